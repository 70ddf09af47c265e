import torch

from abalone_core.method.losses import msc_loss
from reference import dense_msc_loss


def test_dense_formulation_agrees_with_vectorised():
    g = torch.Generator().manual_seed(3)
    z, P = torch.randn(16, 8, generator=g), torch.randn(6, 8, generator=g)
    y = (torch.rand(16, 6, generator=g) < 0.3).float()
    qz, qy = torch.randn(20, 8, generator=g), (torch.rand(20, 6, generator=g) < 0.3).float()
    torch.testing.assert_close(
        dense_msc_loss(z, y, P, 0.1, 0.2, qz, qy), msc_loss(z, y, P, 0.1, 0.2, qz, qy), rtol=1e-5, atol=1e-5
    )
