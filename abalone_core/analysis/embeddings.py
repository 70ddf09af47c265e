"""Checks of embedding matrices, the counterpart of :mod:`abalone_core.data.labels` for representations.

An embedding matrix is (documents x dimensions) of finite floats; NumPy arrays and tensors
(detached, on the CPU) are accepted. The diagnostics (:mod:`abalone_core.analysis`) check
their inputs here.
"""
from __future__ import annotations

import numpy as np


def embedding_matrix(z, n_docs: int | None = None, name: str = "embeddings") -> np.ndarray:
    """``z`` as a float64 (documents x dims) NumPy array, after checking it.

    Raises:
        ValueError: not 2-D, not ``n_docs`` rows (when given), or NaN / inf values.
    """
    if hasattr(z, "detach"):  # torch tensor
        z = z.detach().cpu().numpy()
    x = np.asarray(z).astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (documents x dims) array, got shape {x.shape}")
    if n_docs is not None and x.shape[0] != n_docs:
        raise ValueError(f"{name} has {x.shape[0]} rows but the label matrix has {n_docs} documents")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return x


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


__all__ = ["embedding_matrix", "unit_rows"]
