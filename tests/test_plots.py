import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from abalone_core import analysis
from abalone_core.analysis import maps, plots
from abalone_core.evaluation.metrics import frequency_groups


@pytest.fixture
def y():
    rng = np.random.default_rng(0)
    p = 0.6 / np.arange(1, 10)
    y = (rng.random((80, 9)) < p).astype(int)
    y[~y.any(axis=1), 0] = 1
    return y


@pytest.fixture
def groups(y):
    return frequency_groups(y.sum(axis=0))


def test_label_frequency(y, groups):
    counts = y.sum(axis=0)
    fig = plots.label_frequency(counts, names=[f"l{i}" for i in range(9)])
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["head", "medium", "tail"]
    assert fig.layout.yaxis.type == "log"
    # ranks cover 1..L once, and the head trace holds the largest counts
    ranks = np.concatenate([t.x for t in fig.data])
    assert sorted(ranks) == list(range(1, 10))
    assert min(fig.data[0].y) >= max(fig.data[2].y)


def test_labels_per_document(y):
    fig = plots.labels_per_document(y)
    assert len(fig.data) == 1 and sum(fig.data[0].y) == len(y)
    fig = plots.labels_per_document({"train": y, "test": y[:20]})
    assert len(fig.data) == 2 and sum(fig.data[1].y) == pytest.approx(1.0)


def test_cooccurrence_heatmap(y, groups):
    fig = plots.cooccurrence_heatmap(y, groups)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    z = np.asarray(fig.data[0].z)
    assert z.shape == ((groups == "head").sum(), (groups == "tail").sum())
    assert (z >= 0).all() and (z <= 1).all()
    counts = plots.cooccurrence_heatmap(y, groups, normalize=False)
    assert np.asarray(counts.data[0].z).sum() > 0
    with pytest.raises(ValueError, match="no label in group"):
        plots.cooccurrence_heatmap(y, groups, rows="huge")


def test_lack_of_positives_curves(y):
    frame = analysis.lack_of_positives(y, [2, 4, 8], queue_sizes=(0, 16), n_draws=5)
    fig = plots.lack_of_positives_curves(frame)
    assert len(fig.data) == 4 * 2                      # groups (all + 3) x queue sizes
    assert fig.layout.xaxis.type == "log"
    assert {t.line.dash for t in fig.data} == {"solid", "dash"}
    with pytest.raises(ValueError, match="needs columns"):
        plots.lack_of_positives_curves(frame.drop(columns="group"))


def test_attraction_repulsion_bars(y, groups):
    z = np.random.default_rng(1).normal(size=(len(y), 5))
    frame = analysis.attraction_repulsion(z, y, groups=groups)
    fig = plots.attraction_repulsion_bars(frame)
    assert len(fig.data) == 3 * 3                      # (-S_att, S_rep, gap) x groups
    assert sum(len(t.x) for t in fig.data) == 3 * y.shape[1]
    bars = [t for t in fig.data if t.type == "bar"]
    gaps = np.concatenate([t.y for t in bars])
    expected = (-frame["s_att"] - frame["s_rep"]).dropna()
    np.testing.assert_allclose(np.sort(gaps[np.isfinite(gaps)]), np.sort(expected.to_numpy()))
    low, high = fig.layout.yaxis.range                 # the top panel is fitted to the cosines, not from 0
    values = np.concatenate([t.y for t in fig.data if t.type == "scatter"])
    values = values[np.isfinite(values)]
    assert low <= values.min() and high >= values.max() and high - low < (values.max() - values.min()) + 0.2
    with pytest.raises(ValueError, match="group"):
        plots.attraction_repulsion_bars(analysis.attraction_repulsion(z, y))


def test_term_share_bars(y, groups):
    frames = {"L_Base": analysis.term_counts(y[:16], "base", groups=groups),
              "L_MSC": analysis.term_counts(y[:16], "msc", groups=groups)}
    fig = plots.term_share_bars(frames)
    assert len(fig.data) == 2 * 2
    assert list(fig.data[0].x) == ["head", "medium", "tail"]
    assert sum(fig.data[0].y) == pytest.approx(1.0)
    fig = plots.term_share_bars(frames, columns=("attraction_per_anchor",), by="label")
    assert len(fig.data) == 2 and len(fig.data[0].x) == y.shape[1]
    with pytest.raises(ValueError, match="by must be"):
        plots.term_share_bars(frames, by="anchor")


def test_f1_vs_frequency(y, groups):
    f1 = np.linspace(10, 90, y.shape[1])
    fig = plots.f1_vs_frequency(f1, y.sum(axis=0))
    assert len(fig.data) == 3 and fig.layout.xaxis.type == "log"
    fig = plots.f1_vs_frequency({"base": f1, "msc": f1[::-1]}, y.sum(axis=0), groups=groups)
    assert len(fig.data) == 6
    with pytest.raises(ValueError, match="shape"):
        plots.f1_vs_frequency(f1[:-1], y.sum(axis=0))


def test_clustering_curves():
    frame = pd.DataFrame({"loss": ["base"] * 3 + ["msc"] * 3, "share": [0.1, 0.5, 1.0] * 2,
                          "silhouette": [0.1, 0.2, 0.3, 0.2, 0.3, 0.4],
                          "davies_bouldin": [2.0, 2.1, 2.2, 1.9, 2.0, 2.1]})
    fig = maps.clustering_curves(frame)
    assert len(fig.data) == 4
    assert list(fig.data[0].x) == [10.0, 50.0, 100.0]
    assert len(maps.clustering_curves(frame[frame["loss"] == "msc"].drop(columns="loss")).data) == 2


def test_umap_scatter():
    xy = np.random.default_rng(0).normal(size=(12, 2))
    color = np.array(["head", "tail", "medium"] * 4)
    fig = maps.umap_scatter(xy, color, hover=[f"doc {i}" for i in range(12)])
    assert len(fig.data) == 3 and [t.name for t in fig.data] == ["head", "medium", "tail"]
    assert sum(len(t.x) for t in fig.data) == 12
    with pytest.raises(ValueError, match="xy must be"):
        maps.umap_scatter(xy[:, :1], color)


def test_training_curves():
    frame = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 4, "step": [3, 1, 2, 4] * 2,
                          "loss": np.linspace(2, 1, 8)})
    fig = plots.training_curves(frame)
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="needs columns"):
        plots.training_curves(frame, y="val_loss")


def test_seed_scores():
    frame = pd.DataFrame({"objective": ["msc", "bce"] * 6, "dataset": ["a"] * 6 + ["b"] * 6,
                          "seed": [0, 0, 1, 1, 2, 2] * 2, "micro_f1": np.arange(12.0), "macro_f1": np.arange(12.0) / 2})
    fig = plots.seed_scores(frame, names={"msc": "L_MSC"})
    assert len(fig.data) == 2 * 2 * 2  # metrics x datasets x (mean, dots)
    mean = fig.data[0]
    assert list(mean.x) == ["L_MSC", "bce"]
    assert mean.y.tolist() == [2.0, 3.0]  # msc on dataset a: mean of 0, 2, 4
    assert list(mean.marker.color) == [plots.LOSS_COLORS["L_MSC"], "#6baed6"]  # a loss's colour; others neutral
    assert len(fig.data[1].y) == 6
    # the y axes are fitted to the values: scores near 60 with one-point differences are not drawn from 0
    near = frame.assign(micro_f1=60 + frame["seed"] * 0.5, macro_f1=40 + frame["seed"] * 0.3)
    fig = plots.seed_scores(near)
    for axis in ("yaxis", "yaxis2", "yaxis3", "yaxis4"):
        low, high = fig.layout[axis].range
        assert low > 30 and high - low < 5
    assert fig.layout.yaxis.range[0] <= 60 and fig.layout.yaxis.range[1] >= 61
    with pytest.raises(ValueError, match="needs columns"):
        plots.seed_scores(frame, metrics=("hamming",))


def test_balance_slider_frames_steps_and_values(y, groups):
    from abalone_core.analysis.balance import balance_grid
    from abalone_core.method.losses import base_loss

    rng = np.random.default_rng(2)
    z = rng.normal(size=(len(y), 6))
    protos = rng.normal(size=(y.shape[1], 6))
    betas, taus = (0.01, 0.1, 1.0), (0.1, 0.5)
    grid = balance_grid(z[:16], y[:16], groups, protos, z[16:48], y[16:48], betas=betas, temperatures=taus)
    fig = plots.balance_slider(grid)
    assert len(fig.data) == 2 * 3                            # (L_Base, L_MSC) x three panels
    assert len(fig.frames) == len(betas) * len(taus)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [f.name for f in fig.frames] == \
        [f"β = {b:g}, τ = {t:g}" for b in betas for t in taus]
    assert all(s.method == "animate" and list(s.args[0]) == [s.label] for s in steps)
    assert fig.layout.sliders[0].active == [f.name for f in fig.frames].index("β = 0.1, τ = 0.1")
    assert list(fig.data[0].x) == ["head", "medium", "tail"]
    # frame "β = 1, τ = 0.5": the L_Base gradient panel against a direct computation
    frame = next(f for f in fig.frames if f.name == "β = 1, τ = 0.5")
    names = [t.name for t in fig.data]
    k = 4 + names[4:6].index("L_Base")                      # third panel (gradient_share), L_Base trace
    direct = analysis.gradient_mass(z[:16], y[:16], base_loss, groups=groups, temperature=0.5)
    expected = [direct["grad_share"][groups == g].sum() for g in ("head", "medium", "tail")]
    np.testing.assert_allclose(frame.data[k].y, expected, rtol=1e-9)
    # and the initial bars are the frame of the active step
    start = fig.frames[fig.layout.sliders[0].active]
    for trace, framed in zip(fig.data, start.data):
        np.testing.assert_allclose(trace.y, framed.y)
    fig = plots.balance_slider(grid, initial=None)
    assert fig.layout.sliders[0].active == 0
    with pytest.raises(ValueError, match="needs columns"):
        plots.balance_slider(grid.drop(columns="gradient_share"))


def test_color_by_loss_one_colour_per_loss():
    fig = go.Figure([go.Bar(x=[1], y=[1], name="L_Base"), go.Bar(x=[1], y=[1], name="L_MSC (beta=0.1)"),
                     go.Bar(x=[1], y=[1], name="L_MSC (beta=1)"), go.Bar(x=[1], y=[1], name="L_MSC (beta=0.1)"),
                     go.Scatter(x=[1], y=[1], name="L_BQueue"), go.Bar(x=[1], y=[1], name="other")])
    plots.color_by_loss(fig)
    assert fig.data[0].marker.color == plots.LOSS_COLORS["L_Base"]
    assert fig.data[1].marker.color == fig.data[2].marker.color == plots.LOSS_COLORS["L_MSC"]
    assert fig.data[1].marker.pattern.shape == fig.data[3].marker.pattern.shape == ""
    assert fig.data[2].marker.pattern.shape == "/"
    assert fig.data[4].line.color == plots.LOSS_COLORS["L_BQueue"]
    assert fig.data[5].marker.color is None
    assert plots.loss_color("L_MSC (beta=1)") == plots.LOSS_COLORS["L_MSC"] and plots.loss_color("x") is None
    assert len(set(plots.LOSS_COLORS.values())) == len(plots.LOSS_COLORS)


def test_f1_vs_frequency_coloured_by_loss(y, groups):
    f1 = np.linspace(10, 90, y.shape[1])
    fig = plots.f1_vs_frequency({"BCE": f1, "L_MSC": f1[::-1]}, y.sum(axis=0), groups=groups, color_by="loss")
    points = [t for t in fig.data if t.x[0] is not None]
    assert len(points) == 6 and not any(t.showlegend for t in points)
    assert {t.marker.color for t in fig.data if t.name.startswith("BCE")} == {plots.LOSS_COLORS["BCE"]}
    assert len({t.marker.symbol for t in points if t.name.startswith("L_MSC")}) == 3
    # the legend: one entry per run, one per group (2 + 3), not one per (run, group)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["BCE", "L_MSC", "head labels", "medium labels", "tail labels"]
    with pytest.raises(ValueError, match="color_by"):
        plots.f1_vs_frequency(f1, y.sum(axis=0), color_by="run")


def test_long_titles_are_broken_into_lines_that_fit():
    long = "Converged encoders (seed 0): the same 1500 test documents under each encoder (maps aligned)"
    fig = plots.f1_vs_frequency(np.ones(3), np.array([1, 2, 3]), title=long)
    lines = fig.layout.title.text.split("<br>")
    assert fig.layout.margin.t == 124 and len(lines) == 2 and max(map(len, lines)) <= 75 and " ".join(lines) == long
    assert plots.f1_vs_frequency(np.ones(3), np.array([1, 2, 3]), title="short").layout.title.text == "short"


def test_loss_gradient_curves_colour_per_loss_dash_per_target():
    p = np.linspace(0.05, 0.95, 5)
    frame = pd.concat([pd.DataFrame({"loss": loss, "target": target, "p": p, "gradient": p})
                       for loss in ("BCE", "DB") for target in ("positive", "negative")])
    fig = plots.loss_gradient_curves(frame)
    assert [t.name for t in fig.data] == ["BCE (positive)", "BCE (negative)", "DB (positive)", "DB (negative)"]
    assert fig.data[0].line.color == fig.data[1].line.color == plots.LOSS_COLORS["BCE"]
    assert [t.line.dash for t in fig.data[:2]] == ["solid", "dash"]
    with pytest.raises(ValueError, match="needs columns"):
        plots.loss_gradient_curves(frame.drop(columns="target"))


def test_align_to_undoes_a_rotation_and_a_reflection():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(30, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1, -1])
    moved = ref @ rot + np.array([5.0, -3.0])
    assert np.allclose(maps.align_to(moved, ref), ref, atol=1e-9)
    with pytest.raises(ValueError, match="must both be"):
        maps.align_to(moved[:, :1], ref)


def test_umap_panels_same_documents_same_range_unlabelled_hidden():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 6)) < 0.3).astype(int)
    y[:5] = 0                                                   # five documents without labels
    ref = rng.normal(size=(40, 2))
    encoders = {"L_MLM": ref, "L_MSC": ref @ np.array([[0.0, 1.0], [-1.0, 0.0]]) * 1.0 + 10}
    fig = maps.umap_panels(encoders, y, chosen=[0, 3], names=[f"l{i}" for i in range(6)])
    per_panel = len(fig.data) // 2
    assert per_panel == 1 + 2                                   # other labels + two chosen labels
    shown = sum(len(t.x) for t in fig.data[:per_panel] if t.name == "other labels")
    assert shown == int((y.any(axis=1) & ~y[:, [0, 3]].any(axis=1)).sum())
    assert fig.data[1].name.startswith("l0 (") and f"{int(y[:, 0].sum())} docs" in fig.data[1].name
    # aligned: the rotated copy lands on the reference; one range for every panel
    assert np.allclose(fig.data[per_panel + 1].x, fig.data[1].x)
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range
    grey = maps.umap_panels(encoders, y, chosen=[0], unlabelled="grey")
    assert grey.data[0].name == "no label" and len(grey.data[0].x) == int((~y.any(axis=1)).sum()) >= 5
    with pytest.raises(ValueError, match="expected"):
        maps.umap_panels({"a": ref[:10]}, y, chosen=[0])
    with pytest.raises(ValueError, match="unlabelled"):
        maps.umap_panels(encoders, y, chosen=[0], unlabelled="drop")


def test_claims_forest_draws_each_difference_with_its_interval():
    claims = pd.DataFrame({
        "dataset": ["d"] * 4,
        "claim": ["L_MSC above L_Base in macro-F1", "L_MSC on par with BCE in micro-F1 (at most 1 point below)",
                  "L_MSC clusters better than L_Base (silhouette)", "not run claim"],
        "metric": ["macro_f1", "micro_f1", "silhouette", "macro_f1"],
        "difference": [1.2, -3.1, 0.01, np.nan], "ci_low": [0.2, -4.0, -0.02, np.nan],
        "ci_high": [2.2, -2.2, 0.04, np.nan], "verdict": ["holds", "fails", "inconclusive", "not run"]})
    fig = plots.claims_forest(claims)
    assert len(fig.data) == 3                                   # one panel per metric; the claim not run is left out
    f1 = fig.data[0]
    assert list(f1.x) == [1.2] and list(f1.y) == ["L_MSC above L_Base in macro-F1"]
    assert f1.error_x.arrayminus[0] == pytest.approx(1.0) and f1.error_x.array[0] == pytest.approx(1.0)
    lines = [s.x0 for s in fig.layout.shapes]
    assert 0 in lines and -1.0 in lines                         # zero, and the "on par" bound of 1 point
    assert fig.data[1].marker.color[0] != fig.data[0].marker.color[0]  # fails and holds differ
    with pytest.raises(ValueError, match="at least one claim"):
        plots.claims_forest(claims[claims["verdict"] == "not run"])
    one_seed = claims.assign(ci_low=np.nan, ci_high=np.nan)        # one paired seed: no interval
    json.dumps(plots.claims_forest(one_seed).to_dict(), allow_nan=False, default=str)  # a kernel must send it


def test_a_slider_figure_opens_on_its_chosen_step_without_playing(y, groups):
    from abalone_core.analysis.balance import balance_grid
    from abalone_core.notebook import _figure_html

    rng = np.random.default_rng(3)
    z = rng.normal(size=(len(y), 6))
    grid = balance_grid(z[:16], y[:16], groups, rng.normal(size=(y.shape[1], 6)), z[16:48], y[16:48],
                        betas=(0.01, 0.1, 1.0), temperatures=(0.05, 0.1))
    fig = plots.balance_slider(grid)
    assert fig.layout.sliders[0].steps[fig.layout.sliders[0].active].label == "β = 0.1, τ = 0.1"
    html = _figure_html(fig.to_dict())
    assert "Plotly.addFrames" in html           # the frames are there for the slider
    assert "Plotly.animate" not in html         # but nothing plays them on load


def test_forest_plot_panels_name_the_metric_and_its_rule_in_words():
    import pandas as pd

    claims = pd.DataFrame([
        {"claim": "a", "metric": "macro_f1", "difference": 1.0, "ci_low": 0.5, "ci_high": 1.5, "verdict": "holds"},
        {"claim": "b", "metric": "macro_f1_label_tuned", "difference": 0.2, "ci_low": -1, "ci_high": 1.4,
         "verdict": "inconclusive"}])
    titles = [a.text for a in plots.claims_forest(claims).layout.annotations]
    assert "macro-F1 at 0.5" in titles and "macro-F1, a tuned threshold per label" in titles
    assert not any("_" in t for t in titles)
