import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from abalone_core.method.losses import (
    NonFiniteError,
    OTHER_CONTRASTIVE,
    SUPERVISED_LOSSES,
    VARIANTS,
    asymmetric_loss,
    base_loss,
    bce_loss,
    contrastive_loss,
    db_loss,
    focal_loss,
    msc_loss,
    mulsupcon_loss,
)
from reference import db_loop, loop_loss, mulsupcon_loop, supcon_one_view


def random_problem(B=7, L=5, D=6, K=0, p=0.35, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, D, generator=g, dtype=dtype)
    y = (torch.rand(B, L, generator=g) < p).to(dtype)
    y[0] = 0  # an anchor without labels
    protos = torch.randn(L, D, generator=g, dtype=dtype)
    qz = torch.randn(K, D, generator=g, dtype=dtype)
    qy = (torch.rand(K, L, generator=g) < p).to(dtype)
    return z, y, protos, qz, qy


def _grads(fn, *tensors):
    tensors = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*tensors)
    out.backward()
    return out.detach(), [t.grad for t in tensors]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "variant,K,protos",
    [("base", 0, False), ("bqueue", 0, False), ("bqueue", 9, False), ("bqproto", 9, True), ("msc", 0, True), ("msc", 9, True)],
)
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_vectorised_matches_loop(seed, variant, K, protos, temperature):
    z, y, P, qz, qy = random_problem(K=K, seed=seed)
    queue = (qz, qy) if variant != "base" else (None, None)

    def vec(z_, P_, qz_):
        return contrastive_loss(
            z_, y, variant=variant, temperature=temperature, beta=0.3,
            prototypes=P_ if protos else None,
            queue_z=qz_ if queue[0] is not None else None, queue_y=queue[1],
        )

    def ref(z_, P_, qz_):
        return loop_loss(
            z_, y, temperature, variant, beta=0.3, prototypes=P_ if protos else None,
            queue_z=qz_ if queue[0] is not None else None, queue_y=queue[1],
        )

    v, gv = _grads(vec, z, P, qz)
    r, gr = _grads(ref, z, P, qz)
    torch.testing.assert_close(v, r, rtol=1e-10, atol=1e-12)
    for a, b in zip(gv, gr):
        if b is None:
            assert a is None or torch.count_nonzero(a) == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_named_entry_points_match_variants():
    z, y, P, qz, qy = random_problem(K=5)
    assert torch.equal(base_loss(z, y, temperature=0.2), contrastive_loss(z, y, "base", temperature=0.2))
    a = msc_loss(z, y, P, temperature=0.2, beta=0.5, queue_z=qz, queue_y=qy)
    b = contrastive_loss(z, y, "msc", temperature=0.2, beta=0.5, prototypes=P, queue_z=qz, queue_y=qy)
    assert torch.equal(a, b)
    r = loop_loss(z, y, 0.2, "msc", beta=0.5, prototypes=P, queue_z=qz, queue_y=qy)
    torch.testing.assert_close(a, r)


def test_beta_only_reweights_the_denominator():
    z, y, P, _, _ = random_problem()
    # With beta = 1 every key weighs 1: changing beta must change the loss, and
    # beta < 1 lowers the denominator, so every log-probability rises: loss drops.
    assert msc_loss(z, y, P, beta=0.1) < msc_loss(z, y, P, beta=1.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_base_equals_supcon_on_single_label(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    classes = torch.arange(4).repeat_interleave(3)[torch.randperm(12, generator=g)]  # every class twice or more
    y = F.one_hot(classes, 4).double()
    z = torch.randn(12, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(base_loss(z, y, temperature), supcon_one_view(z, classes.tolist(), temperature))


def test_empty_queue_equals_no_queue():
    z, y, P, _, _ = random_problem()
    empty_z, empty_y = torch.zeros(0, z.shape[1], dtype=z.dtype), torch.zeros(0, y.shape[1], dtype=y.dtype)
    torch.testing.assert_close(msc_loss(z, y, P, queue_z=empty_z, queue_y=empty_y), msc_loss(z, y, P))


def test_no_valid_anchor_gives_differentiable_zero():
    z = torch.randn(4, 6, requires_grad=True)
    y = torch.zeros(4, 3)
    loss = base_loss(z, y)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    # Distinct single labels: nobody has a positive under L_Base.
    z2 = torch.randn(3, 6, requires_grad=True)
    loss2 = base_loss(z2, torch.eye(3))
    loss2.backward()
    assert loss2.item() == 0.0 and z2.grad is not None


def test_batch_of_one_and_identical_labels():
    P = torch.randn(3, 6, requires_grad=True)
    z = torch.randn(1, 6, requires_grad=True)
    loss = msc_loss(z, torch.tensor([[1.0, 0, 1]]), P)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(z.grad).all() and torch.isfinite(P.grad).all()
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.ones(6, 3)
    for l in (base_loss(z, y), msc_loss(z, y, torch.randn(3, 4))):
        assert torch.isfinite(l)


label_matrix = st.integers(1, 64).flatmap(
    lambda B: st.tuples(st.just(B), st.integers(1, 12), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
)


@settings(max_examples=60, deadline=None)
@given(
    shape=label_matrix,
    temperature=st.floats(0.03, 1.0),
    beta=st.floats(0.01, 1.0),
    K=st.integers(0, 40),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    variant=st.sampled_from(["base", "bqueue", "bqproto", "msc"]),
)
def test_always_finite(shape, temperature, beta, K, dtype, variant):
    B, L, p, seed = shape
    g = torch.Generator().manual_seed(seed)
    D = 8
    z = (5 * torch.randn(B, D, generator=g)).to(dtype).requires_grad_(True)
    y = (torch.rand(B, L, generator=g) < p).float()
    kw = {}
    if variant != "base":
        kw["queue_z"] = torch.randn(K, D, generator=g).to(dtype)
        kw["queue_y"] = (torch.rand(K, L, generator=g) < p).float()
    if variant in ("bqproto", "msc"):
        kw["prototypes"] = torch.randn(L, D, generator=g).to(dtype).requires_grad_(True)
    loss = contrastive_loss(z, y, variant=variant, temperature=temperature, beta=beta, **kw)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()
    if "prototypes" in kw:
        assert torch.isfinite(kw["prototypes"].grad).all()


def test_float32_under_autocast():
    z = torch.randn(8, 16)
    y = (torch.rand(8, 4) < 0.5).float()
    P = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = msc_loss(z, y, P)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, msc_loss(z, y, P))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda z, y, P: msc_loss(z, y[:, :3], P), "prototypes must be"),
        (lambda z, y, P: msc_loss(z, y[:5], P), "rows like z"),
        (lambda z, y, P: msc_loss(z, 2 * y, P), "0/1"),
        (lambda z, y, P: msc_loss(z, y, P, temperature=0), "temperature"),
        (lambda z, y, P: msc_loss(z, y, P, temperature=-1.0), "temperature"),
        (lambda z, y, P: msc_loss(z, y, P, beta=0), "beta"),
        (lambda z, y, P: msc_loss(z, y, P, beta=1.5), "beta"),
        (lambda z, y, P: msc_loss(z, y, P, queue_z=torch.randn(3, 6)), "go together"),
        (lambda z, y, P: msc_loss(z, y, P, queue_z=torch.randn(3, 5), queue_y=torch.zeros(3, 4)), "queue_z must be"),
        (lambda z, y, P: msc_loss(z, y, P, queue_z=torch.randn(3, 6), queue_y=torch.zeros(2, 4)), "queue_y must be"),
        (lambda z, y, P: msc_loss(z, y, None), "prototypes"),
        (lambda z, y, P: base_loss(z[0], y), r"\(B, D\)"),
        (lambda z, y, P: contrastive_loss(z, y, "nope"), "unknown"),
        (lambda z, y, P: contrastive_loss(z, y, "base", prototypes=P), "no prototypes"),
        (lambda z, y, P: contrastive_loss(z, y, "base", queue_z=torch.randn(2, 6), queue_y=torch.zeros(2, 4)), "no queue"),
    ],
)
def test_bad_input_raises(call, match):
    z = torch.randn(7, 6)
    y = (torch.rand(7, 4) < 0.5).float()
    P = torch.randn(4, 6)
    with pytest.raises(ValueError, match=match):
        call(z, y, P)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("variant", list(VARIANTS) + list(OTHER_CONTRASTIVE))
@pytest.mark.parametrize("where", ["z", "prototypes", "queue_z"])
def test_non_finite_inputs_are_named(variant, where, bad):
    """NaN or inf in the projections, the prototypes or the queue: a ValueError naming the tensor."""
    z, y, protos, qz, qy = random_problem(K=5, dtype=torch.float32)
    uses_queue = variant in OTHER_CONTRASTIVE or VARIANTS[variant][0]
    uses_protos = variant not in OTHER_CONTRASTIVE and VARIANTS[variant][1]
    if (where == "queue_z" and not uses_queue) or (where == "prototypes" and not uses_protos):
        pytest.skip(f"{variant} takes no {where}")
    tensors = {"z": z, "prototypes": protos, "queue_z": qz}
    tensors[where][1, 2] = bad
    kw = {"queue_z": tensors["queue_z"], "queue_y": qy} if uses_queue else {}
    if uses_protos:
        kw["prototypes"] = tensors["prototypes"]
    with pytest.raises(NonFiniteError, match=f"^{where} contains NaN or inf") as err:
        if variant in OTHER_CONTRASTIVE:
            OTHER_CONTRASTIVE[variant](tensors["z"], y, temperature=0.1, **kw)
        else:
            contrastive_loss(tensors["z"], y, variant=variant, **kw)
    assert isinstance(err.value, ValueError) and err.value.name == where


@pytest.mark.parametrize("fn", [bce_loss, focal_loss, asymmetric_loss])
def test_non_finite_logits_are_named(fn):
    x, y = _supervised_data()
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="logits contains NaN or inf"):
        fn(x, y)


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e38, 1e-30, 1e-40])
@pytest.mark.parametrize("variant", ["base", "msc"])
def test_any_finite_norm_normalises_exactly(scale, variant):
    """Projections of norm 1e20 and more (their squares overflow float32) or tiny ones give the
    loss of the unit vectors, instead of zero vectors."""
    z, y, protos, qz, qy = random_problem(K=6, dtype=torch.float32)
    kw = {} if variant == "base" else {"prototypes": protos, "queue_z": qz, "queue_y": qy}
    expected = contrastive_loss(z, y, variant=variant, **kw)
    big = {k: (v * scale if k in ("prototypes", "queue_z") else v) for k, v in kw.items()}
    zs = (z * scale).requires_grad_(True)
    got = contrastive_loss(zs, y, variant=variant, **big)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    got.backward()
    if scale >= 1e-30:  # the gradient scales as 1/|z|: beyond float32 for subnormal inputs
        assert torch.isfinite(zs.grad).all()
    assert torch.isfinite(mulsupcon_loss(z * scale, y, queue_z=qz * scale, queue_y=qy))


# ----------------------------------------------------------------- supervised
def _supervised_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(20, 6, generator=g, dtype=torch.float64), (torch.rand(20, 6, generator=g) < 0.3).double()


def test_bce_matches_torch():
    x, y = _supervised_data()
    torch.testing.assert_close(bce_loss(x, y), torch.nn.BCEWithLogitsLoss()(x, y))


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_focal_matches_formula(gamma):
    x, y = _supervised_data(1)
    p = torch.sigmoid(x)
    ref = -(y * (1 - p) ** gamma * torch.log(p) + (1 - y) * p**gamma * torch.log(1 - p)).mean()
    torch.testing.assert_close(focal_loss(x, y, gamma=gamma), ref)
    if gamma == 0:
        torch.testing.assert_close(focal_loss(x, y, gamma=0.0), bce_loss(x, y))


@pytest.mark.parametrize("gp,gn,m", [(0.0, 3.0, 0.3), (1.0, 4.0, 0.05), (0.0, 0.0, 0.0)])
def test_asymmetric_matches_formula(gp, gn, m):
    x, y = _supervised_data(2)
    p = torch.sigmoid(x)
    pm = torch.clamp(p - m, min=0)
    ref = -(y * (1 - p) ** gp * torch.log(p) + (1 - y) * pm**gn * torch.log(1 - pm)).mean()
    torch.testing.assert_close(asymmetric_loss(x, y, gamma_pos=gp, gamma_neg=gn, margin=m), ref)
    if gp == gn == m == 0:
        torch.testing.assert_close(asymmetric_loss(x, y, 0.0, 0.0, 0.0), bce_loss(x, y))


def test_supervised_losses_finite_at_extreme_logits():
    x = torch.tensor([[80.0, -80.0, 0.0]], dtype=torch.float16).float().requires_grad_(True)
    y = torch.tensor([[0.0, 1.0, 1.0]])
    for fn in (bce_loss, focal_loss, asymmetric_loss):
        loss = fn(x, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        x.grad = None


def test_supervised_bad_input():
    with pytest.raises(ValueError, match="must both be"):
        bce_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="0/1"):
        focal_loss(torch.zeros(3, 4), torch.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="margin"):
        asymmetric_loss(torch.zeros(3, 4), torch.zeros(3, 4), margin=1.0)


# ------------------------------------------------------------------ MulSupCon
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("K", [0, 9])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_mulsupcon_matches_loop(seed, K, temperature):
    z, y, _, qz, qy = random_problem(K=K, seed=seed, p=0.45)
    queue_y = qy if K else None

    def vec(z_, qz_):
        return mulsupcon_loss(z_, y, temperature, queue_z=qz_ if K else None, queue_y=queue_y)

    def ref(z_, qz_):
        return mulsupcon_loop(z_, y, temperature, queue_z=qz_ if K else None, queue_y=queue_y)

    v, gv = _grads(vec, z, qz)
    r, gr = _grads(ref, z, qz)
    assert r > 0
    torch.testing.assert_close(v, r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gv[0], gr[0], rtol=1e-9, atol=1e-12)
    if K:
        torch.testing.assert_close(gv[1], gr[1], rtol=1e-9, atol=1e-12)


def test_mulsupcon_weighs_every_label_pair_equally():
    # Hand-made case: documents 0 and 1 share labels a and b, document 2 has a only.
    # Pairs: (0,a) P={1,2}, (0,b) P={1}, (1,a) P={0,2}, (1,b) P={0}, (2,a) P={0,1}.
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    t = 0.5
    s = (z @ z.T) / t
    lp = [[s[i, a] - torch.logsumexp(torch.stack([s[i, k] for k in range(3) if k != i]), 0) for a in range(3)] for i in range(3)]
    pairs = [(lp[0][1] + lp[0][2]) / 2, lp[0][1], (lp[1][0] + lp[1][2]) / 2, lp[1][0], (lp[2][0] + lp[2][1]) / 2]
    torch.testing.assert_close(mulsupcon_loss(z, y, t), -sum(pairs) / 5)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_mulsupcon_equals_supcon_on_single_label(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    classes = torch.arange(4).repeat_interleave(3)[torch.randperm(12, generator=g)]
    y = F.one_hot(classes, 4).double()
    z = torch.randn(12, 8, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mulsupcon_loss(z, y, temperature), supcon_one_view(z, classes.tolist(), temperature))


def test_mulsupcon_queue_is_part_of_keys_and_empty_queue_is_none():
    z, y, _, qz, qy = random_problem(K=6, seed=3, p=0.45)
    empty_z, empty_y = qz[:0], qy[:0]
    torch.testing.assert_close(mulsupcon_loss(z, y, queue_z=empty_z, queue_y=empty_y), mulsupcon_loss(z, y))
    # The queue's rows act as further batch documents that are never anchors.
    full = mulsupcon_loss(z, y, queue_z=qz, queue_y=qy)
    assert not torch.isclose(full, mulsupcon_loss(z, y))


def test_mulsupcon_no_positive_gives_differentiable_zero():
    for y in (torch.zeros(4, 3), torch.eye(3)):
        z = torch.randn(len(y), 6, requires_grad=True)
        loss = mulsupcon_loss(z, y)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    # Batch of one with a queue that shares no label.
    z = torch.randn(1, 6, requires_grad=True)
    loss = mulsupcon_loss(z, torch.tensor([[1.0, 0.0]]), queue_z=torch.randn(2, 6), queue_y=torch.tensor([[0.0, 1.0]] * 2))
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None


def test_mulsupcon_is_exposed_outside_the_ladder():
    assert "mulsupcon" not in VARIANTS
    assert OTHER_CONTRASTIVE["mulsupcon"] is mulsupcon_loss
    assert SUPERVISED_LOSSES["db"] is db_loss and SUPERVISED_LOSSES["bce"] is bce_loss


@settings(max_examples=60, deadline=None)
@given(
    shape=label_matrix,
    temperature=st.floats(0.03, 1.0),
    K=st.integers(0, 40),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
)
def test_mulsupcon_always_finite(shape, temperature, K, dtype):
    B, L, p, seed = shape
    g = torch.Generator().manual_seed(seed)
    z = (5 * torch.randn(B, 8, generator=g)).to(dtype).requires_grad_(True)
    y = (torch.rand(B, L, generator=g) < p).float()
    qz = torch.randn(K, 8, generator=g).to(dtype).requires_grad_(True)
    qy = (torch.rand(K, L, generator=g) < p).float()
    loss = mulsupcon_loss(z, y, temperature, queue_z=qz, queue_y=qy)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss >= 0
    assert torch.isfinite(z.grad).all()
    # The queue holds detached keys in training; without a valid pair the zero only
    # reaches z, as in the other losses.
    assert qz.grad is None or torch.isfinite(qz.grad).all()


def test_mulsupcon_float32_under_autocast():
    z = torch.randn(8, 16)
    y = (torch.rand(8, 4) < 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mulsupcon_loss(z, y)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, mulsupcon_loss(z, y))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda z, y: mulsupcon_loss(z, y[:5]), "rows like z"),
        (lambda z, y: mulsupcon_loss(z[0], y), r"z must be \(B, D\)"),
        (lambda z, y: mulsupcon_loss(z, 2 * y), "0/1"),
        (lambda z, y: mulsupcon_loss(z, torch.full_like(y, float("nan"))), "y must be"),
        (lambda z, y: mulsupcon_loss(torch.full_like(z, float("nan")), y), "z contains NaN"),
        (lambda z, y: mulsupcon_loss(z, y, temperature=0.0), "temperature"),
        (lambda z, y: mulsupcon_loss(z, y, queue_z=torch.randn(3, 6)), "go together"),
        (lambda z, y: mulsupcon_loss(z, y, queue_z=torch.randn(3, 5), queue_y=torch.zeros(3, 4)), "queue_z must be"),
        (lambda z, y: mulsupcon_loss(z, y, queue_z=torch.randn(3, 6), queue_y=torch.zeros(3, 5)), "queue_y must be"),
        (lambda z, y: mulsupcon_loss(z, y, queue_z=torch.full((3, 6), float("nan")), queue_y=torch.zeros(3, 4)), "queue_z contains"),
        (lambda z, y: mulsupcon_loss(z, y, queue_z=torch.randn(3, 6), queue_y=torch.full((3, 4), 0.5)), "queue_y"),
    ],
)
def test_mulsupcon_bad_input_raises(call, match):
    z = torch.randn(7, 6)
    y = (torch.rand(7, 4) < 0.5).float()
    with pytest.raises(ValueError, match=match):
        call(z, y)


# ---------------------------------------------------------- distribution-balanced
def _db_data(seed=0, N=12, L=5, n_train=200):
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(N, L, generator=g, dtype=torch.float64)
    y = (torch.rand(N, L, generator=g) < 0.35).double()
    y[0] = 0  # a document without labels
    counts = torch.randint(1, n_train, (L,), generator=g)
    return x, y, counts, n_train


DB_SETTINGS = [
    dict(alpha=0.1, beta=10.0, mu=0.9, kappa=0.05, lam=2.0, focal=True, gamma=2.0, focal_alpha=0.5),  # text paper
    dict(alpha=0.1, beta=10.0, mu=0.05, kappa=0.05, lam=2.0, focal=False, gamma=2.0, focal_alpha=0.5),
    dict(alpha=0.3, beta=4.0, mu=0.4, kappa=0.5, lam=5.0, focal=True, gamma=1.5, focal_alpha=0.25),
    dict(alpha=0.0, beta=0.0, mu=0.0, kappa=0.0, lam=1.0, focal=True, gamma=0.0, focal_alpha=0.7),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kw", DB_SETTINGS)
def test_db_matches_loop(seed, kw):
    x, y, counts, n = _db_data(seed)
    v, (gv,) = _grads(lambda x_: db_loss(x_, y, counts, n, **kw), x)
    r, (gr,) = _grads(lambda x_: db_loop(x_, y, counts, n, **kw), x)
    torch.testing.assert_close(v, r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gv, gr, rtol=1e-9, atol=1e-12)


def test_db_defaults_are_the_text_papers():
    x, y, counts, n = _db_data(1)
    torch.testing.assert_close(db_loss(x, y, counts, n), db_loop(x, y, counts, n, **DB_SETTINGS[0]))


def test_db_hand_computed_value():
    # One document with label 0; counts (2, 8) of 10 documents; zero logits; no bias, no focal.
    # r = (1/2)/(1/2) = 1 for the positive, (1/8)/(1/2) = 1/4 for the negative.
    sig = lambda t: 1 / (1 + math.exp(-t))
    w_pos, w_neg = 0.1 + sig(10 * (1 - 0.9)), 0.1 + sig(10 * (0.25 - 0.9))
    expected = (w_pos * math.log(2) + w_neg * math.log(2) / 2) / 2
    loss = db_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([2, 8]), 10, kappa=0.0, focal=False)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_db_reduces_to_bce_and_focal():
    x, y, counts, n = _db_data(2)
    # alpha = 1/2 and beta = 0 make every weight 1/2 + sigmoid(0) = 1; lam = 1, kappa = 0.
    plain = dict(alpha=0.5, beta=0.0, kappa=0.0, lam=1.0)
    torch.testing.assert_close(db_loss(x, y, counts, n, focal=False, **plain), bce_loss(x, y))
    for g in (0.0, 2.0):
        torch.testing.assert_close(db_loss(x, y, counts, n, focal=True, gamma=g, focal_alpha=0.5, **plain), 0.5 * focal_loss(x, y, gamma=g))


def test_db_bias_is_a_shift_of_the_logits_by_the_prior_logit():
    x, y, counts, n = _db_data(3)
    prior_logit = torch.log(counts.double() / (n - counts.double()))
    for kappa in (0.05, 0.7):
        torch.testing.assert_close(
            db_loss(x, y, counts, n, kappa=kappa), db_loss(x + kappa * prior_logit, y, counts, n, kappa=0.0)
        )


def test_db_depends_on_counts_only_through_ratios():
    x, y, counts, n = _db_data(4)
    torch.testing.assert_close(db_loss(x, y, counts, n), db_loss(x, y, 3 * counts, 3 * n))
    assert not torch.isclose(db_loss(x, y, counts, n), db_loss(x, y, counts.flip(0), n))


def test_db_negative_tolerance():
    # A confident negative costs less with a larger lam: softplus(lam x) / lam falls with lam for x < 0.
    x = torch.tensor([[-2.0]])
    y = torch.zeros(1, 1)
    kw = dict(kappa=0.0, focal=False)
    assert db_loss(x, y, [5], 10, lam=5.0, **kw) < db_loss(x, y, [5], 10, lam=1.0, **kw)


def test_db_finite_at_extreme_logits_and_float32_under_autocast():
    x = torch.tensor([[80.0, -80.0, 0.0], [-1e4, 1e4, 3.0]]).requires_grad_(True)
    y = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    for kw in DB_SETTINGS + [dict(gamma=0.5), dict(gamma=0.0)]:
        loss = db_loss(x, y, torch.tensor([1, 0, 10]), 10, **kw)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        x.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = db_loss(x.detach(), y, torch.tensor([1, 5, 9]), 10)
    assert loss.dtype == torch.float32


@settings(max_examples=40, deadline=None)
@given(shape=label_matrix, scale=st.floats(0.1, 200.0), dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
def test_db_always_finite(shape, scale, dtype):
    N, L, p, seed = shape
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(N, L, generator=g)).to(dtype).requires_grad_(True)
    y = (torch.rand(N, L, generator=g) < p).float()
    counts = torch.randint(0, 51, (L,), generator=g)
    loss = db_loss(x, y, counts, 50)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss >= 0
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(logits=torch.zeros(3, 5)), "must both be"),
        (dict(y=torch.full((3, 4), 0.5)), "0/1"),
        (dict(logits=torch.tensor([[0.0, float("nan"), 0, 0]] * 3)), "logits contains NaN"),
        (dict(class_counts=torch.ones(5)), "class_counts must be"),
        (dict(class_counts=torch.tensor([1, 2, -1, 3])), "class_counts"),
        (dict(class_counts=torch.tensor([1, 2, 11, 3])), "class_counts"),
        (dict(class_counts=torch.tensor([1, 2, float("nan"), 3])), "class_counts"),
        (dict(n_train=1), "n_train"),
        (dict(n_train=10.5), "n_train"),
        (dict(lam=0.0), "lam"),
        (dict(gamma=-1.0), "gamma"),
        (dict(beta=-1.0), "beta"),
        (dict(focal_alpha=1.5), "focal_alpha"),
        (dict(kappa=-0.1), "kappa"),
    ],
)
def test_db_bad_input_raises(kw, match):
    args = dict(logits=torch.zeros(3, 4), y=torch.zeros(3, 4), class_counts=torch.tensor([1, 2, 3, 4]), n_train=10)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        db_loss(**args)


def test_label_overlap_and_msc_counts_follow_their_definition_on_tensors_and_arrays():
    """The pair weights the losses use, and analysis.term_counts with them on numpy arrays."""
    from abalone_core.method.losses import label_overlap, msc_counts

    rng = np.random.default_rng(0)
    a = (rng.random((5, 4)) < 0.4).astype(np.float64)
    a[0] = 0  # an anchor without labels: its unions with unlabelled keys are empty
    keys = np.concatenate([a, (rng.random((6, 4)) < 0.4).astype(np.float64)])
    off = np.ones((5, 11), dtype=bool)
    off[np.arange(5), np.arange(5)] = False
    arrays = label_overlap(a, keys, off)
    tensors = label_overlap(torch.from_numpy(a), torch.from_numpy(keys), torch.from_numpy(off))
    for x, t in zip(arrays, tensors):
        np.testing.assert_array_equal(t.numpy(), x)
    n_labels, inter, inv_union = arrays
    for i in range(5):
        assert n_labels[i] == a[i].sum()
        for l in range(11):
            union = np.logical_or(a[i], keys[l]).sum()
            assert inter[i, l] == np.logical_and(a[i], keys[l]).sum()
            assert inv_union[i, l] == (0.0 if l == i else 1.0 / max(union, 1))
    counts = msc_counts(inv_union, keys)
    np.testing.assert_array_equal(msc_counts(tensors[2], torch.from_numpy(keys)).numpy(), counts)
    np.testing.assert_allclose(counts, 1 + np.array([[sum(inv_union[i, l] for l in range(11) if keys[l, c])
                                                      for c in range(4)] for i in range(5)]))
