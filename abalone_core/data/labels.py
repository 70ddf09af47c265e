"""Checks of multi-label matrices, in one place: every module that takes labels uses them.

A label matrix is (documents x labels) with 0/1 entries (multi-hot). :func:`label_matrix`
checks NumPy arrays, SciPy sparse matrices and tensors on the CPU and returns a NumPy array;
:func:`check_label_tensor` checks a tensor where it lives (GPU included) without copying it.
"""
from __future__ import annotations

import numpy as np


def label_matrix(y, name: str, rows: int | None = None, labels: int | None = None, dtype=np.int8,
                 rows_of: str = "documents") -> np.ndarray:
    """``y`` as a (rows, labels) NumPy array of ``dtype``, after checking it.

    Args:
        y: array-like, SciPy sparse matrix or tensor.
        name: the argument's name, for the error messages.
        rows: the number of rows it must have (None: any), ``rows_of`` says of what.
        labels: the number of label columns it must have (None: any, but at least one).
    Raises:
        ValueError: not 2-D, wrong number of rows or columns, or values other than 0 and 1.
    """
    if hasattr(y, "toarray"):  # SciPy sparse
        y = y.toarray()
    if hasattr(y, "detach"):  # torch tensor
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D (documents x labels) 0/1 array, got shape {y.shape}")
    if rows is not None and y.shape[0] != rows:
        raise ValueError(f"{name} has {y.shape[0]} rows but there are {rows} {rows_of}")
    if labels is not None and y.shape[1] != labels:
        raise ValueError(f"{name} has {y.shape[1]} label columns, expected {labels}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 values only (a multi-hot label matrix; threshold "
                         "probabilities or binarise labels first)")
    return y.astype(dtype)


def check_label_tensor(y, name: str) -> None:
    """Raise ValueError unless the tensor ``y`` holds only 0 and 1 (any device, any dtype)."""
    import torch

    if y.dtype != torch.bool and not ((y == 0) | (y == 1)).all():
        raise ValueError(f"{name} must be multi-hot with 0/1 entries only (threshold or binarise your labels)")


__all__ = ["label_matrix", "check_label_tensor"]
