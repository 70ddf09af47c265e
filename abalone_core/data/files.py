"""The ``csv`` and ``jsonl`` datasets: user data in local files.

:func:`load_table` reads one file (splits from a column, or made by iterative
stratification) or one file per split (``path={"train": ..., "validation": ...,
"test": ...}``). :func:`read_table` reads a file and says, for every row, where it came
from, so that bad data is reported as "file, line 7: what is wrong; what to do".
"""
from __future__ import annotations

import functools
import json
import pathlib

import numpy as np
import pandas as pd

from .build import as_list, assemble, binarize, label_lists, need_columns
from .dataset import MultiLabelDataset
from .registry import register_dataset
from .splits import SPLIT_ALIASES, SPLITS, normalise_splits

FORMATS = ("csv", "jsonl")


def read_table(path, fmt: str, encoding: str = "utf-8") -> tuple:
    """A CSV or JSON-lines file as a DataFrame, and ``where(i)`` naming the file and row ``i``.

    Rows of a CSV are counted from 1 after the header ("data row 3"); rows of a
    JSON-lines file are named by their line number.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{fmt} file not found: {path}")
    if fmt == "jsonl":
        return _read_jsonl(path, encoding)
    try:
        df = pd.read_csv(path, encoding=encoding)
    except UnicodeDecodeError as err:
        raise ValueError(_not_decodable(path, encoding, err)) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: a csv file needs a header row naming its columns and one row per "
                         "document") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: {str(err).strip()}; check the quoting and the number of fields") from None
    return df, lambda i: f"{path}, data row {i + 1}"


def _read_jsonl(path: pathlib.Path, encoding: str) -> tuple:
    records, lines = [], []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise ValueError(_not_decodable(path, encoding, err, lineno)) from None
            if lineno == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {lineno}: not a complete JSON object ({err.msg}, column "
                                 f"{err.colno}); each line must hold one whole object, so repair or delete "
                                 "that line") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object {{...}}, "
                                 f"got {type(record).__name__}")
            records.append(record)
            lines.append(lineno)
    return pd.DataFrame.from_records(records), lambda i: f"{path}, line {lines[i]}"


def _not_decodable(path, encoding, err: UnicodeDecodeError, lineno: int | None = None) -> str:
    if lineno is None:  # find the line: pandas does not say
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as line_err:
                    err = line_err
                    break
    at = f", line {lineno}" if lineno is not None else ""
    return (f"{path}{at}: byte {err.object[err.start:err.start + 1]!r} is not valid {encoding} "
            f"({err.reason}); re-save the file as UTF-8 or pass encoding= (e.g. encoding='latin-1')")


def _is_binary(column: pd.Series) -> bool:
    """A numeric or boolean column whose values are all 0 / 1."""
    values = column.dropna()
    numeric = pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)
    return numeric and len(values) > 0 and bool(values.isin((0, 1)).all())


def frame_to_arrays(df: pd.DataFrame, *, text_column, label_column, label_sep, where_file: str, where_row):
    """Texts (joined text columns) and label lists, or a binary matrix, from a DataFrame.

    Returns:
        (texts, label lists or None, (N, L) 0/1 matrix or None).
    """
    text_cols = as_list(text_column)
    label_cols = as_list(label_column)
    if df.empty and not len(df.columns):
        raise ValueError(f"{where_file} holds no documents (the file is empty); write one per line or row")
    need_columns(df.columns, text_cols + label_cols, where_file)
    if df.empty:
        raise ValueError(f"{where_file} holds no documents (a header without rows); add its documents, or "
                         "leave this file out of path")
    texts = df[text_cols].fillna("").astype(str).agg("\n".join, axis=1).str.strip().tolist()
    if isinstance(label_column, str):
        if _is_binary(df[label_column]):
            binary = [c for c in df.columns if c not in text_cols and _is_binary(df[c])]
            raise ValueError(f"{where_file}: column {label_column!r} holds 0/1 values, not label names; for "
                             f"one 0/1 column per label pass label_column=[...] naming them (0/1 columns "
                             f"here: {binary})")
        return texts, label_lists(df[label_column].tolist(), label_sep, where_row), None
    for c in label_cols:
        bad = np.flatnonzero(~df[c].isin((0, 1)).to_numpy())
        if bad.size:
            value = df[c].iloc[bad[0]]
            value = value.item() if isinstance(value, np.generic) else value
            raise ValueError(f"{where_row(int(bad[0]))}: binary label column {c!r} holds {value!r}; "
                             "columns listed in label_column=[...] must hold 0 or 1")
    return texts, None, df[label_cols].to_numpy().astype(np.uint8)


def _paths_by_split(path, split_column) -> dict:
    """{split or None: path}; a dict of paths gives one file per split."""
    if not isinstance(path, dict):
        return {None: path}
    if split_column is not None:
        raise ValueError("give split_column= for one file, or path={split: file}, not both")
    out = {}
    for key, p in path.items():
        split = SPLIT_ALIASES.get(str(key).strip().lower())
        if split is None:
            raise ValueError(f"path={{...}}: unknown split {key!r}; use {list(SPLITS)}")
        if split in out:
            raise ValueError(f"path={{...}}: two files for the {split!r} split")
        out[split] = p
    return out


def load_table(*, path, fmt: str = "csv", text_column="text", label_column="labels", label_sep=None,
               split_column=None, label_names=None, min_train_count: int = 0,
               split_sizes=(0.8, 0.1, 0.1), seed: int = 0, name=None, encoding: str = "utf-8") -> MultiLabelDataset:
    """Local CSV or JSON-lines data.

    Args:
        path: the file, or one file per split: ``{"train": a, "validation": b, "test": c}``
            (aliases such as "dev" work; a split without a file stays empty).
        fmt: "csv" or "jsonl".
        text_column: column name, or several names joined with newlines (e.g. title, body).
        label_column: one column holding a list of label names (JSON lists; in CSV a
            "['a', 'b']" string), a delimited string (give ``label_sep``) or one name;
            or a list of binary 0/1 columns, one per label.
        label_sep: delimiter of label strings, e.g. "|" or ","; "" keeps each string whole. A
            label name that contains it is split in two: refused when ``label_names`` lists it,
            undetectable otherwise (cells written as lists, "['a, b', 'c']", avoid it).
        split_column: column with train / validation (val, dev) / test; None (with one
            file) splits with iterative stratification (``split_sizes``, ``seed``).
        label_names: fixed label set and order (default: sorted names found).
        min_train_count: drop labels with fewer training documents.
        name: dataset name (default: the file's name).
        encoding: text encoding of the files (an ASCII-compatible one for JSON lines).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be 'csv' or 'jsonl', got {fmt!r}")
    split_by = [n for n in label_names or () if label_sep and label_sep in str(n)]
    if split_by:
        raise ValueError(f"label_names: {split_by[0]!r} contains label_sep {label_sep!r}, so a cell naming it is "
                         "split in two; write the labels with a separator that no label name contains (and give "
                         "it as label_sep), or write the cells as lists ['a', 'b']")
    texts, lists, matrices, splits = [], [], [], []
    for split, file in _paths_by_split(path, split_column).items():
        df, where_row = read_table(file, fmt, encoding)
        t, rows, y = frame_to_arrays(df, text_column=text_column, label_column=label_column,
                                     label_sep=label_sep, where_file=str(file), where_row=where_row)
        texts += t
        lists += rows or []
        matrices += [y] if y is not None else []
        if split is not None:
            splits += [split] * len(t)
        elif split_column is not None:
            need_columns(df.columns, [split_column], str(file))
            splits += list(normalise_splits(df[split_column], where_row))
    if isinstance(label_column, str):
        matrix, names = binarize(lists, label_names)
    else:
        matrix, names = np.concatenate(matrices), as_list(label_column)
    first = path[next(iter(path))] if isinstance(path, dict) else path
    return assemble(name or pathlib.Path(first).stem, texts, matrix, names, np.array(splits) if splits else None,
                    min_train_count=min_train_count, split_sizes=split_sizes, seed=seed)


register_dataset("csv", functools.partial(load_table, fmt="csv"))
register_dataset("jsonl", functools.partial(load_table, fmt="jsonl"))
