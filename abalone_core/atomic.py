"""Atomic writes: a record file holds either its old content or its new content, never half.

Every file a run keeps (checkpoints, encoders, ``config.yaml``, ``metrics.json``,
``history.jsonl``, caches) is written to a private temporary file in the same folder,
flushed to disk, then renamed over the target in one step. A process killed mid-write,
a full disk or two writers at once leave the previous file as it was, and no temporary
file stays behind.

>>> from abalone_core import atomic
>>> atomic.write_json("run/metrics.json", {"test": {"micro_f1": 61.3}})
>>> atomic.save_torch(state, "run/checkpoint.pt")

Errors of the file system are :class:`WriteFailed` (an ``OSError``) with one readable line
naming the file: ``no space left on device while writing run/checkpoint.pt; ...``. An error
of the caller's own code while it writes (a download cut off) is raised as it is.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# What torch's zip writer says when the file under it stops taking bytes (it drops the errno).
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "PytorchStreamWriter failed writing")
TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")
# Errors of the disk or the folder, whoever meets them; other errors of the caller's code are its own.
DISK_ERRORS = (*NO_SPACE, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)


class WriteFailed(OSError):
    """A record file could not be written; the previous file (if any) is unchanged."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:
        return self.args[0]


def temporary_name(path: str | os.PathLike) -> Path:
    """A private temporary name next to ``path``: hidden, with the process id and a random part,
    so concurrent writers (runs of a sweep, two processes) never share one."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _failure(path: Path, err: OSError) -> WriteFailed:
    if isinstance(err, WriteFailed):
        return err
    if err.errno in NO_SPACE:
        return WriteFailed(f"no space left on device while writing {path}; free some space and run the command "
                           f"again (the previous {path.name}, if any, is unchanged)", err.errno)
    reason = err.strerror or str(err)
    return WriteFailed(f"cannot write {path}: {reason}; check the folder's permissions and free space", err.errno)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a private temporary file for writing; on a clean exit it is flushed, synced
    and renamed to ``path``; on any error (or Ctrl-C) it is removed and ``path`` is unchanged.

    Args:
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
    Raises:
        WriteFailed: opening, writing, syncing or renaming the file failed, or the caller's
            code met a disk error (:data:`DISK_ERRORS`: no space, quota, read-only, permissions,
            I/O); any other error of the caller's code (a ``ConnectionError`` while copying a
            download, say) is raised unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    tmp = temporary_name(path)
    inside = False  # True while the caller's code runs
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            inside = True
            yield f
            inside = False
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if inside and err.errno not in DISK_ERRORS:
            raise
        raise _failure(path, err) from err
    except BaseException:
        _remove(tmp)
        raise
    _sync_folder(path.parent)


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # best effort: the error being reported matters more
        pass


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (best effort; not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (:func:`temporary_name`) that other processes left in ``folder``:
    writers killed mid-write (SIGKILL, a power cut) never remove theirs, and a checkpoint's can
    weigh hundreds of MB. Call it only while holding the folder's lock, which proves that no
    other writer is alive there. Returns the files deleted."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        match = TEMPORARY.fullmatch(path.name)
        if match and int(match.group(1)) != os.getpid() and path.is_file():
            _remove(path)
            removed.append(path)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Standard JSON (a NaN or infinity is an error: convert them to None first)."""
    write_text(path, json.dumps(obj, indent=indent, allow_nan=False))


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically. torch reports a write that failed (a full disk)
    as a RuntimeError of its own ("unexpected pos", "file write failed"): it becomes the
    :class:`WriteFailed` of a full disk."""
    import torch

    try:
        with atomic_open(path, "wb") as f:
            torch.save(obj, f)
    except RuntimeError as err:
        if not any(sign in str(err) for sign in TORCH_WRITE_FAILED):
            raise
        raise _failure(Path(path), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from err


def save_numpy(path: str | os.PathLike, array) -> None:
    """``numpy.save`` to exactly ``path`` (no ``.npy`` is appended), atomically."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, array)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Add one line to a small text file (a history), rewriting it atomically, so a process
    killed mid-write never leaves half a line."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_text(path, old + line.rstrip("\n") + "\n")


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that files can be made in it.

    Raises:
        WriteFailed: one line naming the folder and the reason (read-only, permissions,
        a file in the way, no space).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteFailed(f"output folder {folder} is a file, not a folder; choose another output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
    except OSError as err:
        if err.errno in NO_SPACE:
            raise WriteFailed(f"no space left on device for output folder {folder}; free some space first",
                              err.errno) from err
        raise WriteFailed(f"output folder {folder} is not writable ({err.strerror or err}); choose another output "
                          "folder or fix its permissions", err.errno) from err
    os.close(fd)
    os.unlink(probe)
    return folder


__all__ = ["WriteFailed", "DISK_ERRORS", "atomic_open", "write_bytes", "write_text", "write_json", "save_torch",
           "save_numpy", "append_line", "check_writable", "temporary_name", "remove_temporaries"]
