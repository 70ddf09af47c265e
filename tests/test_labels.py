"""The one check of label matrices used by metrics, the probe, the TF-IDF baseline and the losses."""
import numpy as np
import pytest
import torch
from scipy import sparse

from abalone_core.data.labels import check_label_tensor, label_matrix


def test_accepts_arrays_sparse_and_tensors_and_converts():
    y = [[0, 1], [1, 0]]
    for given in (y, np.array(y, dtype=float), sparse.csr_matrix(y), torch.tensor(y)):
        out = label_matrix(given, "y")
        assert out.dtype == np.int8 and out.tolist() == y
    assert label_matrix(y, "y", dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("y, kwargs, message", [
    ([0, 1], {}, "y must be a 2-D"),
    (np.zeros((3, 0)), {}, "y must be a 2-D"),
    ([[0, 1]], {"rows": 2}, "y has 1 rows but there are 2 documents"),
    ([[0, 1]], {"labels": 3}, "y has 2 label columns, expected 3"),
    ([[0, 0.5]], {}, "y must hold 0/1 values only"),
    ([[0, 2]], {}, "y must hold 0/1 values only"),
])
def test_bad_matrices_are_named(y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        label_matrix(y, "y", **kwargs)


def test_tensor_check_where_the_tensor_lives():
    check_label_tensor(torch.tensor([[0.0, 1.0]]), "y")
    check_label_tensor(torch.tensor([[True, False]]), "y")
    with pytest.raises(ValueError, match="queue_y must be multi-hot"):
        check_label_tensor(torch.tensor([[0.0, 0.3]]), "queue_y")
