import pytest
import torch
from torch import nn

from abalone_core.method.memory import LabelQueue, MomentumEncoder, gather
from abalone_core.method.model import Prototypes


def batch(start, n, dim=2, L=3):
    z = torch.arange(start, start + n, dtype=torch.float32)[:, None].repeat(1, dim)
    y = (torch.arange(start, start + n)[:, None] % L == torch.arange(L)).to(torch.uint8)
    return z, y


def test_queue_fill_counter_never_exposes_empty_slots():
    q = LabelQueue(size=5, dim=2, num_labels=3)
    assert len(q) == 0 and q.keys()[0].shape == (0, 2)
    q.enqueue(*batch(0, 2))
    z, y = q.keys()
    assert len(q) == 2 and z[:, 0].tolist() == [0, 1] and y.shape == (2, 3)


def test_queue_fifo_with_wraparound_when_size_not_multiple_of_batch():
    q = LabelQueue(size=5, dim=2, num_labels=3)
    for start in range(0, 9, 3):  # 3 batches of 3 -> 9 keys into 5 slots
        q.enqueue(*batch(start, 3))
    z, y = q.keys()
    assert len(q) == 5
    assert z[:, 0].tolist() == [4, 5, 6, 7, 8]  # oldest first, the 4 oldest dropped
    assert torch.equal(y, batch(4, 5)[1])
    assert int(q.ptr) == 9 % 5


def test_queue_batch_larger_than_queue_keeps_newest():
    q = LabelQueue(size=4, dim=2, num_labels=3)
    q.enqueue(*batch(0, 6))
    assert q.keys()[0][:, 0].tolist() == [2, 3, 4, 5]


def test_queue_state_dict_round_trip():
    q = LabelQueue(size=5, dim=2, num_labels=3)
    q.enqueue(*batch(0, 3))
    q2 = LabelQueue(size=5, dim=2, num_labels=3)
    q2.load_state_dict(q.state_dict())
    assert len(q2) == 3 and int(q2.ptr) == 3
    for a, b in zip(q.keys(), q2.keys()):
        assert torch.equal(a, b)
    assert set(q.state_dict()) == {"z", "y", "ptr", "count"}


def test_queue_rejects_bad_shapes():
    q = LabelQueue(size=5, dim=2, num_labels=3)
    with pytest.raises(ValueError, match="keys must be"):
        q.enqueue(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="key labels"):
        q.enqueue(torch.zeros(2, 2), torch.zeros(2, 4))


def test_momentum_update_formula_and_no_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    key = MomentumEncoder(net, momentum=0.9)
    before = [p.clone() for p in key.module.parameters()]
    opt = torch.optim.SGD([p for p in list(net.parameters()) + list(key.parameters()) if p.requires_grad], lr=1.0)
    out = net(torch.randn(8, 4)).sum() + key(torch.randn(8, 4)).sum()
    out.backward()
    opt.step()
    # The optimiser and backward left the key encoder alone.
    for b, p in zip(before, key.module.parameters()):
        assert torch.equal(b, p) and p.grad is None and not p.requires_grad
    key.update(net)
    for b, pk, pq in zip(before, key.module.parameters(), net.parameters()):
        torch.testing.assert_close(pk, 0.9 * b + 0.1 * pq.detach())
    # Buffers (BatchNorm running statistics) are copied.
    torch.testing.assert_close(key.module[1].running_mean, net[1].running_mean)


def test_momentum_one_freezes_and_zero_copies():
    net = nn.Linear(3, 3)
    frozen, copy = MomentumEncoder(net, 1.0), MomentumEncoder(net, 0.0)
    with torch.no_grad():
        net.weight.add_(1.0)
    frozen.update(net)
    copy.update(net)
    assert not torch.equal(frozen.module.weight, net.weight)
    assert torch.equal(copy.module.weight, net.weight)
    with pytest.raises(ValueError):
        MomentumEncoder(net, 1.5)


def test_gather_is_identity_without_process_group():
    t = torch.randn(3, 2)
    assert gather(t) is t


def test_prototypes_are_trainable_and_shaped():
    p = Prototypes(num_labels=7, dim=16)
    assert p().shape == (7, 16) and p.weight.requires_grad
    p().pow(2).sum().backward()
    assert p.weight.grad is not None


def test_key_encoder_stays_in_eval_mode():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    parent = nn.Module()
    parent.key = MomentumEncoder(net)
    parent.train()
    assert parent.key.training and not parent.key.module.training
    x = torch.ones(3, 4)
    assert torch.equal(parent.key(x), parent.key(x))  # no dropout noise in keys
