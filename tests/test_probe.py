"""Tests of the batched linear probe (abalone_core.evaluation.probe)."""
import numpy as np
import pytest
import torch
from scipy.special import expit

from abalone_core.evaluation.metrics import per_label_f1
from abalone_core.evaluation.probe import ProbeConfig, ProbeResult, init_heads, linear_probe, train_grid

FAST = dict(lrs=(0.1, 0.01), weight_decays=(0.1, 1e-4), heads=2, epochs=5, batch_size=32)


def separable(n=300, dim=12, n_labels=4, seed=0, scale=1.0):
    """Gaussian embeddings; label l is on when a fixed direction's score passes a quantile."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    score = x @ rng.normal(size=(dim, n_labels))
    cut = np.quantile(score, np.linspace(0.6, 0.85, n_labels), axis=0).diagonal()
    return x * scale, (score > cut).astype(np.int64)


def test_batched_equals_individual_training():
    x, y = separable(n=90, dim=6, n_labels=3)
    x, y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    settings = [(1.0, 1.0), (0.1, 0.01), (0.01, 1e-6)]
    init_w, init_b = init_heads(6, 3, heads=2, seed=3)
    w, b = train_grid(x, y, settings, init_w, init_b, epochs=4, batch_size=16, seed=7)
    assert w.shape == (3, 2, 6, 3) and b.shape == (3, 2, 3)
    for s, h, label in [(0, 0, 0), (1, 1, 2), (2, 0, 1), (1, 0, 1)]:
        w1, b1 = train_grid(
            x, y[:, label:label + 1], [settings[s]],
            init_w[h:h + 1, :, label:label + 1].clone(), init_b[h:h + 1, label:label + 1].clone(),
            epochs=4, batch_size=16, seed=7,
        )
        torch.testing.assert_close(w1[0, 0, :, 0], w[s, h, :, label], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(b1[0, 0, 0], b[s, h, label], rtol=1e-9, atol=1e-9)
    # training moved the weights, and settings ended in different places
    assert not torch.allclose(w[1, 0], init_w[0].double())
    assert not torch.allclose(w[0], w[1])


def test_batched_matches_plain_logistic_regression_loop():
    """One regression trained by a textbook loop (nn.Linear + AdamW) matches the grid."""
    x, y = separable(n=70, dim=5, n_labels=2, seed=1)
    x, y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    init_w, init_b = init_heads(5, 2, heads=1, seed=0)
    w, b = train_grid(x, y, [(0.1, 0.01)], init_w, init_b, epochs=3, batch_size=20, seed=5)
    lin = torch.nn.Linear(5, 1).double()
    with torch.no_grad():
        lin.weight.copy_(init_w[0, :, 1][None])
        lin.bias.copy_(init_b[0, 1:2])
    opt = torch.optim.AdamW([{"params": [lin.weight], "weight_decay": 0.01},
                             {"params": [lin.bias], "weight_decay": 0.0}], lr=0.1)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        order = torch.randperm(70, generator=gen)
        for start in range(0, 70, 20):
            idx = order[start:start + 20]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(x[idx])[:, 0], y[idx, 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(lin.weight[0].detach(), w[0, 0, :, 1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(lin.bias[0].detach(), b[0, 0, 1], rtol=1e-9, atol=1e-9)


def test_learns_a_separable_problem():
    x, y = separable(n=900, dim=16, n_labels=5)
    res = linear_probe(x[:600], y[:600], x[600:], y[600:],
                       ProbeConfig(lrs=(0.1,), weight_decays=(1e-4,), heads=2, epochs=15, batch_size=64),
                       progress=False)
    assert res.val_f1.shape == (5,)
    assert res.val_f1.min() > 85
    f1 = per_label_f1(y[600:], res.predict(x[600:]))
    np.testing.assert_allclose(f1, res.val_f1)


def test_choice_avoids_harmful_weight_decay():
    # tiny-scale features need large weights; weight decay 1 with lr 1 zeroes the weights each step
    x, y = separable(n=600, dim=8, n_labels=3, scale=0.02)
    cfg = ProbeConfig(lrs=(1.0,), weight_decays=(1.0, 1e-6), heads=2, epochs=10, batch_size=64)
    res = linear_probe(x[:400], y[:400], x[400:], y[400:], cfg, progress=False)
    assert res.grid_f1.shape == (2, 3)
    assert (res.grid_f1[1] > res.grid_f1[0] + 20).all()  # the case is built so decay clearly hurts
    np.testing.assert_array_equal(res.best_weight_decay, 1e-6)
    np.testing.assert_array_equal(res.best_lr, 1.0)
    np.testing.assert_allclose(res.val_f1, res.grid_f1[1])


def test_choice_is_per_label_best_of_independent_runs():
    x, y = separable(n=500, dim=10, n_labels=4, seed=2)
    base = dict(heads=2, epochs=4, batch_size=50, seed=1)
    grid = linear_probe(x[:350], y[:350], x[350:], y[350:],
                        ProbeConfig(lrs=(1.0, 0.01), weight_decays=(1.0, 1e-4), **base), progress=False)
    single_f1 = []
    for lr, wd in grid.settings:
        one = linear_probe(x[:350], y[:350], x[350:], y[350:],
                           ProbeConfig(lrs=(lr,), weight_decays=(wd,), **base), progress=False)
        single_f1.append(one.val_f1)
    single_f1 = np.array(single_f1)
    np.testing.assert_allclose(grid.grid_f1, single_f1, atol=1e-6)
    np.testing.assert_allclose(grid.val_f1, single_f1.max(axis=0), atol=1e-6)
    # ties go to the first setting in grid order
    first_best = np.argmax(grid.grid_f1 >= grid.grid_f1.max(axis=0) - 1e-9, axis=0)
    np.testing.assert_array_equal(grid.best_setting, first_best)
    np.testing.assert_array_equal(grid.best_lr, grid.settings[first_best, 0])
    np.testing.assert_array_equal(grid.best_weight_decay, grid.settings[first_best, 1])


def test_proba_is_mean_of_heads():
    x, y = separable(n=300, dim=8, n_labels=3)
    res = linear_probe(x[:200], y[:200], x[200:], y[200:], ProbeConfig(**FAST, seed=4), progress=False)
    assert res.weight.shape == (8, 3, 2) and res.bias.shape == (3, 2)
    assert not np.allclose(res.weight[..., 0], res.weight[..., 1])  # heads start apart and stay apart
    per_head = [expit(x[200:] @ res.weight[:, :, h] + res.bias[:, h]) for h in range(2)]
    proba = res.predict_proba(torch.from_numpy(x[200:]))
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba, np.mean(per_head, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.predict(x[200:]), (proba >= 0.5).astype(np.int8))


def test_standardize_uses_train_statistics():
    x, y = separable(n=300, dim=6, n_labels=2)
    x = x * np.arange(1, 7, dtype=np.float32) + 5.0
    x[:, 2] = 3.0  # a constant feature must not divide by zero
    res = linear_probe(x[:200], y[:200], x[200:], y[200:],
                       ProbeConfig(**FAST, standardize=True), progress=False)
    np.testing.assert_allclose(res.mean, x[:200].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(res.scale[[0, 1, 3]], x[:200, [0, 1, 3]].std(axis=0), rtol=1e-5)
    assert res.scale[2] == 1.0
    z = (x[200:] - res.mean) / res.scale
    manual = np.mean([expit(z @ res.weight[:, :, h] + res.bias[:, h]) for h in range(2)], axis=0)
    np.testing.assert_allclose(res.predict_proba(x[200:]), manual, rtol=1e-5, atol=1e-6)
    assert np.isfinite(res.predict_proba(x[200:])).all()


def test_label_without_validation_positive():
    x, y = separable(n=300, dim=8, n_labels=3)
    vy = y[200:].copy()
    vy[:, 1] = 0
    ty = y[:200].copy()
    ty[:, 2] = 0  # and a label never seen positive in training
    cfg = ProbeConfig(lrs=(1.0, 0.1), weight_decays=(1.0, 0.01), heads=2, epochs=4, batch_size=32)
    res = linear_probe(x[:200], ty, x[200:], vy, cfg, progress=False)
    assert res.val_f1[1] == 0 and np.isfinite(res.val_f1).all()
    # the kept setting is the one with the fewest validation false positives (first on ties)
    fp = []
    for s in range(len(res.settings)):
        one = linear_probe(x[:200], ty, x[200:], vy,
                           ProbeConfig(lrs=(res.settings[s, 0],), weight_decays=(res.settings[s, 1],),
                                       heads=2, epochs=4, batch_size=32), progress=False)
        fp.append(one.predict(x[200:])[:, 1].sum())
    assert res.best_setting[1] == int(np.argmin(fp))
    assert res.predict(x[200:])[:, 2].sum() == 0  # never-positive label is never predicted


def test_deterministic_under_seed():
    x, y = separable(n=200, dim=6, n_labels=2)
    run = lambda seed: linear_probe(x[:150], y[:150], x[150:], y[150:],
                                    ProbeConfig(**FAST, seed=seed), progress=False)
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    np.testing.assert_array_equal(a.best_setting, b.best_setting)
    assert not np.allclose(a.weight, c.weight)
    t = torch.from_numpy
    d = linear_probe(t(x[:150]), t(y[:150]).bool(), t(x[150:]), t(y[150:]),
                     ProbeConfig(**FAST, seed=0), progress=False)  # torch tensors in, same result
    np.testing.assert_array_equal(a.weight, d.weight)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(train_x=d["train_x"][:, :, None]), "train_x must be a non-empty 2-D"),
        (lambda d: d.update(val_x=d["val_x"][:, :3]), "val_x has 3 features"),
        (lambda d: d.update(train_y=d["train_y"][:10]), "train_y has 10 rows"),
        (lambda d: d.update(val_y=d["val_y"][:, :1]), "train_y has 2 labels but val_y has 1"),
        (lambda d: d.update(train_y=d["train_y"] * 2), "0/1 values only"),
        (lambda d: d["train_x"].__setitem__((0, 0), np.nan), "NaN or inf"),
        (lambda d: d["val_x"].__setitem__((1, 1), np.inf), "NaN or inf"),
        (lambda d: d.update(val_x=d["val_x"][:0]), "non-empty"),
    ],
)
def test_input_validation(change, message):
    x, y = separable(n=60, dim=5, n_labels=2)
    data = dict(train_x=x[:40].copy(), train_y=y[:40], val_x=x[40:].copy(), val_y=y[40:])
    change(data)
    with pytest.raises(ValueError, match=message):
        linear_probe(**data, config=ProbeConfig(**FAST), progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lrs=()), "lrs"),
        (dict(lrs=(0.1, -1.0)), "lrs"),
        (dict(weight_decays=(-0.1,)), "weight_decays"),
        (dict(heads=0), "heads"),
        (dict(epochs=2.5), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(threshold=1.0), "threshold"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProbeConfig(**kwargs)


def test_predict_checks_dimension():
    x, y = separable(n=100, dim=5, n_labels=2)
    res = linear_probe(x[:70], y[:70], x[70:], y[70:], ProbeConfig(**FAST), progress=False)
    assert isinstance(res, ProbeResult)
    with pytest.raises(ValueError, match="trained on 5"):
        res.predict(x[:, :4])


def test_default_grid_is_the_papers():
    cfg = ProbeConfig()
    assert len(cfg.settings) == 15 and cfg.settings[0] == (1.0, 1.0) and cfg.settings[-1] == (0.01, 1e-6)
    assert (cfg.heads, cfg.epochs, cfg.threshold) == (3, 40, 0.5)


def test_ties_go_to_first_setting_in_grid_order():
    # identical settings train identical regressions, so every label ties between them
    x, y = separable(n=200, dim=6, n_labels=3)
    cfg = ProbeConfig(lrs=(0.1,), weight_decays=(1e-4, 1e-4, 1e-4), heads=2, epochs=3, batch_size=32)
    res = linear_probe(x[:150], y[:150], x[150:], y[150:], cfg, progress=False)
    np.testing.assert_array_equal(res.grid_f1[0], res.grid_f1[2])
    np.testing.assert_array_equal(res.best_setting, 0)


# --------------------------------------------------------------------------- switches of the released code
def test_defaults_keep_the_papers_protocol_and_its_numbers():
    cfg = ProbeConfig()
    assert (cfg.selection, cfg.untrained_heads) == ("per_label", 0)
    x, y = separable(n=300, dim=8, n_labels=3, seed=5)
    base = dict(lrs=(1.0, 0.1, 0.01), weight_decays=(1.0, 1e-4), heads=3, epochs=6, batch_size=32, seed=2)
    res = linear_probe(x[:200], y[:200], x[200:], y[200:], ProbeConfig(**base), progress=False)
    explicit = linear_probe(x[:200], y[:200], x[200:], y[200:],
                            ProbeConfig(**base, selection="per_label", untrained_heads=0), progress=False)
    np.testing.assert_array_equal(res.weight, explicit.weight)
    np.testing.assert_array_equal(res.bias, explicit.bias)
    assert res.weight.shape == (8, 3, 3) and res.untrained_heads == 0
    # numbers recorded with the probe before the switches existed
    np.testing.assert_array_equal(res.best_setting, [3, 0, 1])
    np.testing.assert_allclose(res.val_f1, [93.18181818181817, 94.54545454545455, 92.85714285714286])
    np.testing.assert_allclose(res.grid_f1[:, 0], [90.0, 93.02325581395348, 87.5, 93.18181818181817,
                                                   87.35632183908046, 88.63636363636364])
    np.testing.assert_allclose(res.weight.astype(np.float64).sum(), 68.15521308407187, rtol=1e-4)
    np.testing.assert_allclose(res.bias.astype(np.float64).sum(), -42.46524178981781, rtol=1e-4)
    np.testing.assert_allclose(res.predict_proba(x[200:202]),
                               [[0.01046598982065916, 0.1682412475347519, 3.397115506231785e-06],
                                [0.004918799269944429, 0.6676221489906311, 0.014577793888747692]],
                               rtol=1e-4, atol=1e-7)


def test_untrained_heads_enter_the_mean_probability():
    x, y = separable(n=300, dim=8, n_labels=3, seed=6)
    xt, yt, xv, yv = x[:200], y[:200], x[200:], y[200:]
    base = dict(heads=3, epochs=5, batch_size=32, seed=3)
    lrs, wds = (0.1, 1.0), (1e-4, 1.0)
    res = linear_probe(xt, yt, xv, yv, ProbeConfig(lrs=lrs, weight_decays=wds, untrained_heads=2, **base),
                       progress=False)
    assert res.untrained_heads == 2 and res.weight.shape == (8, 3, 5) and res.bias.shape == (3, 5)
    uw, ub = res.weight[:, :, 3:].astype(np.float64), res.bias[:, 3:]
    # never trained: Xavier-uniform weights for a (L=3, D=8) layer, zero biases, two distinct heads
    np.testing.assert_array_equal(ub, 0.0)
    assert np.abs(uw).max() <= np.sqrt(6 / (8 + 3)) and np.abs(uw).max() > 0.5 * np.sqrt(6 / (8 + 3))
    assert not np.allclose(uw[..., 0], uw[..., 1])
    p_untrained = 1 / (1 + np.exp(-np.einsum("nd,dlu->nlu", xv.astype(np.float64), uw)))  # (M, L, 2)
    for s, (lr, wd) in enumerate((lr, wd) for lr in lrs for wd in wds):
        alone = linear_probe(xt, yt, xv, yv, ProbeConfig(lrs=(lr,), weight_decays=(wd,), **base), progress=False)
        # the same trained heads as without untrained heads; the mean takes all H + U heads
        expected = (3 * alone.predict_proba(xv) + p_untrained.sum(axis=2)) / 5
        np.testing.assert_allclose(res.grid_f1[s], per_label_f1(yv, (expected >= 0.5).astype(np.int8)))
        chosen = res.best_setting == s
        if chosen.any():
            np.testing.assert_allclose(res.weight[:, chosen, :3], alone.weight[:, chosen], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(res.predict_proba(xv)[:, chosen], expected[:, chosen], rtol=1e-5, atol=1e-5)


def test_untrained_heads_do_not_change_the_trained_ones():
    x, y = separable(n=240, dim=6, n_labels=2, seed=7)
    one = dict(lrs=(0.1,), weight_decays=(1e-4,), heads=3, epochs=4, batch_size=32, seed=9)
    plain = linear_probe(x[:160], y[:160], x[160:], y[160:], ProbeConfig(**one), progress=False)
    extra = linear_probe(x[:160], y[:160], x[160:], y[160:], ProbeConfig(**one, untrained_heads=2), progress=False)
    np.testing.assert_array_equal(extra.weight[..., :3], plain.weight)
    np.testing.assert_array_equal(extra.bias[..., :3], plain.bias)
    # independent computation of the mean over 5 heads from the stored weights
    xv = x[160:].astype(np.float64)
    logits = np.einsum("nd,dlh->nlh", xv, extra.weight.astype(np.float64)) + extra.bias.astype(np.float64)
    sig = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(extra.predict_proba(x[160:]), sig.mean(axis=2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extra.predict_proba(x[160:]),
                               (3 * plain.predict_proba(x[160:]) + sig[..., 3:].sum(axis=2)) / 5, rtol=1e-5, atol=1e-6)
    # the untrained heads depend on the seed only, not on the training settings
    longer = linear_probe(x[:160], y[:160], x[160:], y[160:], ProbeConfig(**{**one, "epochs": 6}, untrained_heads=2),
                          progress=False)
    np.testing.assert_array_equal(longer.weight[..., 3:], extra.weight[..., 3:])
    other = linear_probe(x[:160], y[:160], x[160:], y[160:], ProbeConfig(**{**one, "seed": 10}, untrained_heads=2),
                         progress=False)
    assert not np.allclose(other.weight[..., 3:], extra.weight[..., 3:])


def mixed_scales(n=500, seed=0):
    """Two labels on tiny-scale features, two noisy labels on large-scale ones: labels prefer different settings."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    y = np.zeros((n, 4), dtype=np.int64)
    y[:, 0] = x[:, 0] + x[:, 1] > 0.5
    y[:, 1] = x[:, 2] - x[:, 3] > 0.8
    y[:, 2] = x[:, 5] + 0.5 * x[:, 6] + rng.normal(size=n) > 0.7
    y[:, 3] = x[:, 7] - x[:, 8] + rng.normal(size=n) > 1.0
    return x * np.r_[np.full(5, 0.02), np.full(5, 3.0)].astype(np.float32), y


def test_global_selection_keeps_the_setting_with_best_validation_micro_f1():
    from abalone_core.evaluation.metrics import multilabel_scores

    x, y = mixed_scales()
    xt, yt, xv, yv = x[:350], y[:350], x[350:], y[350:]
    base = dict(heads=2, epochs=4, batch_size=50, seed=1)
    grid = dict(lrs=(1.0, 0.01), weight_decays=(1.0, 1e-4))
    per_label = linear_probe(xt, yt, xv, yv, ProbeConfig(**grid, **base), progress=False)
    assert len(set(per_label.best_setting.tolist())) > 1  # the case is built so labels choose differently
    glob = linear_probe(xt, yt, xv, yv, ProbeConfig(**grid, **base, selection="global"), progress=False)
    assert glob.selection == "global"
    assert len(set(glob.best_setting.tolist())) == 1
    micro, preds = [], []
    for lr, wd in glob.settings:
        one = linear_probe(xt, yt, xv, yv, ProbeConfig(lrs=(lr,), weight_decays=(wd,), **base), progress=False)
        preds.append(one.predict(xv))
        micro.append(multilabel_scores(yv, preds[-1])["micro_f1"])
    np.testing.assert_allclose(glob.grid_micro_f1, micro, atol=1e-9)
    np.testing.assert_allclose(per_label.grid_micro_f1, micro, atol=1e-9)  # the grid is the same either way
    chosen = int(np.argmax(micro))  # first maximum: grid order breaks ties
    np.testing.assert_array_equal(glob.best_setting, chosen)
    np.testing.assert_array_equal(glob.best_lr, glob.settings[chosen, 0])
    np.testing.assert_array_equal(glob.best_weight_decay, glob.settings[chosen, 1])
    np.testing.assert_array_equal(glob.predict(xv), preds[chosen])
    assert multilabel_scores(yv, glob.predict(xv))["micro_f1"] == pytest.approx(max(micro))
    np.testing.assert_allclose(glob.val_f1, glob.grid_f1[chosen])


def test_global_selection_with_untrained_heads():
    x, y = separable(n=300, dim=8, n_labels=3, seed=8)
    cfg = ProbeConfig(**FAST, selection="global", untrained_heads=2)
    res = linear_probe(x[:200], y[:200], x[200:], y[200:], cfg, progress=False)
    assert res.weight.shape == (8, 3, 4) and len(set(res.best_setting.tolist())) == 1
    from abalone_core.evaluation.metrics import multilabel_scores

    assert multilabel_scores(y[200:], res.predict(x[200:]))["micro_f1"] == pytest.approx(res.grid_micro_f1.max())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(selection="per-label"), "selection must be one of"),
        (dict(selection="best"), "selection must be one of"),
        (dict(untrained_heads=-1), "untrained_heads"),
        (dict(untrained_heads=1.5), "untrained_heads"),
        (dict(untrained_heads=True), "untrained_heads"),
        (dict(precision="fp16"), "precision must be one of"),
    ],
)
def test_switch_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProbeConfig(**kwargs)


def test_switches_pass_through_the_run_configuration():
    from abalone_core.training.config import Config

    cfg = Config(probe={"selection": "global", "untrained_heads": 2})
    probe = ProbeConfig(**cfg.probe)
    assert (probe.selection, probe.untrained_heads) == ("global", 2)


def test_bfloat16_probe_scores_like_float32():
    # 40 labels, long-tailed; the same grid, seed and batches in both precisions
    x, y = separable(n=1500, dim=32, n_labels=40, seed=3)
    tx, ty, vx, vy = x[:1000], y[:1000], x[1000:], y[1000:]
    config = dict(lrs=(0.1, 0.01), weight_decays=(1e-4,), heads=2, epochs=8, batch_size=64)
    full = linear_probe(tx, ty, vx, vy, ProbeConfig(**config), progress=False)
    half = linear_probe(tx, ty, vx, vy, ProbeConfig(**config, precision="bf16"), progress=False)
    p_full, p_half = full.predict_proba(vx), half.predict_proba(vx)
    assert not np.array_equal(p_full, p_half)  # bfloat16 did run
    assert np.abs(p_full - p_half).max() < 0.05  # probabilities within 5 points
    # the scores a table reports move by a fraction of a point
    assert abs(per_label_f1(vy, full.predict(vx)).mean() - per_label_f1(vy, half.predict(vx)).mean()) < 1.0
    cfg_probe = ProbeConfig(**__import__("abalone_core.training.config", fromlist=["Config"]).Config(
        probe={"precision": "bf16"}).probe)
    assert cfg_probe.precision == "bf16"  # set from a run's configuration: probe: {precision: bf16}
