"""The errors a run raises on purpose, each with a message that names the file or setting and
the way out: :class:`Interrupted` (stopped cleanly, resumable), :class:`RunFolderError` (an
output folder this run must not touch or cannot use) and :class:`NonFiniteLoss`.

Used by :mod:`abalone_core.training.train`, :mod:`abalone_core.training.runs`, :mod:`abalone_core.training.encoders` and
the command line.
"""
from __future__ import annotations


class Interrupted(RuntimeError):
    """Raised after a SIGTERM/SIGINT once the checkpoint is safely written."""


class RunFolderError(ValueError):
    """The output folder holds something this run must not touch or cannot use (another
    configuration, a finished run without its checkpoint, an unreadable file); the message
    names the file and the way out (``--restart``)."""


class NonFiniteLoss(FloatingPointError):
    """The loss or the gradient became NaN or inf; the step was not applied and the last
    good checkpoint is unchanged."""


__all__ = ["Interrupted", "RunFolderError", "NonFiniteLoss"]
