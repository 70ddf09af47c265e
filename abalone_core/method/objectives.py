"""What each objective is, declared once: the table every other module asks.

=============  =============================================  ====================  =====================
kind           what trains                                    what scores it        selection metric
=============  =============================================  ====================  =====================
untrained      nothing (``frozen``, the paper's L_MLM row)    the linear probe      none
contrastive    encoder and projection head (and prototypes)   the linear probe      ``val_loss_in_batch``
classifier     encoder and a linear classifier                its probabilities     ``val_micro_f1``
tfidf          linear classifiers on TF-IDF features          their decision values none
=============  =============================================  ====================  =====================

A fine-tuning row (``msc-ft``: :mod:`abalone_core.report.rows`) is a classifier objective that starts
from a contrastive run's encoder; :func:`row_kind` names it ``fine-tuning``.

Adding an objective is one :func:`register` call with its loss: the trainer, the run folder,
the encoders, the sweeps and the chapters ask this table, never the objective's name.

>>> get("msc").queue, get("msc").prototypes, get("bce").kind
(True, True, 'classifier')
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import losses

KINDS = ("untrained", "contrastive", "classifier", "tfidf")
SELECTION = {"contrastive": "val_loss_in_batch", "classifier": "val_micro_f1"}


@dataclass(frozen=True)
class Objective:
    """One objective.

    Attributes:
        name: as a configuration names it (``Config.objective``).
        kind: one of :data:`KINDS`.
        loss: contrastive: ``fn(z, y, *, temperature, beta, prototypes=None, queue_z=None,
            queue_y=None) -> scalar`` on projections z (B, D) and labels y (B, L); classifier:
            ``factory(config, class_counts, n_train) -> fn(logits, y) -> scalar``; None otherwise.
        queue: a contrastive objective with a momentum key encoder and a labelled queue.
        prototypes: a contrastive objective with one learnt prototype per label.
        text: what it reads: ``tokens`` (the first ``max_length`` tokens), ``whole`` (whole
            documents) or ``cut`` (the first ``max_length`` tokens, decoded back to words).
    """

    name: str
    kind: str
    loss: Callable | None = None
    queue: bool = False
    prototypes: bool = False
    text: str = "tokens"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"objective {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind in SELECTION and self.loss is None:
            raise ValueError(f"objective {self.name!r}: a {self.kind} objective needs its loss")

    @property
    def trains(self) -> bool:
        """Whether runs of it take optimiser steps (and have a checkpoint and a history)."""
        return self.kind in SELECTION

    @property
    def encoder(self) -> bool:
        """Whether runs of it have an encoder to embed with."""
        return self.kind != "tfidf"

    @property
    def probed(self) -> bool:
        """Whether the linear probe scores it (the paper's linear evaluation)."""
        return self.kind in ("untrained", "contrastive")

    @property
    def selection(self) -> str | None:
        """The validation metric its checkpoints and its convergence are judged on."""
        return SELECTION.get(self.kind)


TABLE: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    """Add (or replace) an objective of the table; returns it."""
    TABLE[objective.name] = objective
    return objective


def get(name: str) -> Objective:
    """The objective called ``name``; a ``ValueError`` listing the known ones otherwise."""
    try:
        return TABLE[name]
    except (KeyError, TypeError):
        raise ValueError(f"objective must be one of {list(TABLE)}, got {name!r}") from None


def names(kind: str | None = None) -> tuple[str, ...]:
    """The objectives of one kind (all without ``kind``), in the table's order."""
    return tuple(n for n, o in TABLE.items() if kind is None or o.kind == kind)


def row_kind(row: str) -> str:
    """The kind of a row of the tables: an objective's kind, or ``fine-tuning`` for
    ``<contrastive>-ft`` (a classifier started from a contrastive encoder)."""
    if row.endswith("-ft") and row[:-3] in TABLE and TABLE[row[:-3]].kind == "contrastive":
        return "fine-tuning"
    return get(row).kind


# --------------------------------------------------------------------------- the losses' calls
def _ladder(variant: str):
    """A loss of the paper's Table 2 ladder (:func:`abalone_core.method.losses.contrastive_loss`)."""
    def loss(z, y, *, temperature, beta, prototypes=None, queue_z=None, queue_y=None):
        return losses.contrastive_loss(z, y, variant=variant, temperature=temperature, beta=beta,
                                       prototypes=prototypes, queue_z=queue_z, queue_y=queue_y)
    return loss


def _mulsupcon(z, y, *, temperature, beta=None, prototypes=None, queue_z=None, queue_y=None):
    return losses.mulsupcon_loss(z, y, temperature=temperature, queue_z=queue_z, queue_y=queue_y)


def _classifier(fn, **settings):
    """A factory of a sigmoid loss whose settings come from the configuration."""
    def factory(config, class_counts=None, n_train=None):
        return functools.partial(fn, **{k: getattr(config, v) for k, v in settings.items()}) if settings else fn
    return factory


def _db(config, class_counts, n_train):
    counts = torch.as_tensor(np.asarray(class_counts), dtype=torch.float32)
    return lambda x, y: losses.db_loss(x, y, counts.to(x.device), n_train)


def _asymmetric(config, class_counts=None, n_train=None):
    return lambda x, y: losses.asymmetric_loss(x, y, config.asl_gamma_pos, config.asl_gamma_neg, config.asl_margin)


register(Objective("frozen", "untrained"))
for _name, (_queue, _protos, _balanced) in losses.VARIANTS.items():
    register(Objective(_name, "contrastive", _ladder(_name), queue=_queue, prototypes=_protos))
register(Objective("mulsupcon", "contrastive", _mulsupcon, queue=True))
register(Objective("bce", "classifier", _classifier(losses.bce_loss)))
register(Objective("focal", "classifier", _classifier(losses.focal_loss, gamma="focal_gamma")))
register(Objective("asymmetric", "classifier", _asymmetric))
register(Objective("db", "classifier", _db))
register(Objective("tfidf-linear", "tfidf", text="whole"))
register(Objective("tfidf-cut", "tfidf", text="cut"))

__all__ = ["Objective", "KINDS", "TABLE", "register", "get", "names", "row_kind"]
