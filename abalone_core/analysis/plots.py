"""Plotly figure builders for the book's chapters.

Each builder takes arrays or the frames made by :mod:`abalone_core.analysis`
and returns a ``plotly.graph_objects.Figure``; none loads data or picks a
renderer. Label groups are coloured the same everywhere (head blue, medium
grey, tail orange, as in the paper's Figure 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..evaluation.metrics import GROUPS, frequency_groups

GROUP_COLORS = {"all": "#333333", "head": "#1f77b4", "medium": "#8c8c8c", "tail": "#ff7f0e"}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_SYMBOLS = ("circle", "diamond", "square", "x", "triangle-up", "cross")
_TEMPLATE = "plotly_white"


def _need(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; got {list(frame.columns)}")


def _color(name, i: int) -> str:
    return GROUP_COLORS.get(str(name), _PALETTE[i % len(_PALETTE)])


def _ordered(values) -> list:
    """Distinct values, head / medium / tail first, then the rest in first-seen order."""
    seen = list(dict.fromkeys(np.asarray(values).tolist()))
    return [g for g in ("all",) + GROUPS if g in seen] + [v for v in seen if v not in ("all",) + GROUPS]


def _names(names, n: int) -> list[str]:
    if names is None:
        return [str(i) for i in range(n)]
    names = [str(v) for v in names]
    if len(names) != n:
        raise ValueError(f"names must have one entry per label ({n}), got {len(names)}")
    return names


def _label_axis(frame: pd.DataFrame) -> pd.Series:
    return frame["name"].astype(str) if "name" in frame.columns else frame["label"].astype(str)


def label_frequency(label_counts, groups=None, names=None, title: str = "Label frequency") -> go.Figure:
    """Rank plot of training label counts, log y, one marker trace per group.

    Args:
        label_counts: (L,) training documents per label.
        groups: (L,) group per label; default ``frequency_groups(label_counts)``.
        names: (L,) label names for hover text.
    """
    counts = np.asarray(label_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"label_counts must be a non-empty 1-D array, got shape {counts.shape}")
    groups = frequency_groups(counts) if groups is None else np.asarray(groups).astype(str)
    names = np.asarray(_names(names, counts.size))
    order = np.lexsort((np.arange(counts.size), -counts))
    rank = np.empty(counts.size, np.int64)
    rank[order] = np.arange(1, counts.size + 1)
    fig = go.Figure()
    for i, g in enumerate(_ordered(groups)):
        sel = order[groups[order] == g]
        fig.add_trace(go.Scatter(x=rank[sel], y=counts[sel], mode="markers", name=g, text=names[sel],
                                 marker=dict(color=_color(g, i)),
                                 hovertemplate="%{text}<br>rank %{x}<br>%{y} documents<extra></extra>"))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="label rank (most frequent first)",
                      yaxis_title="training documents")
    fig.update_yaxes(type="log")
    return _fit_title(fig)


def labels_per_document(labels, title: str = "Labels per document") -> go.Figure:
    """Bars of the number of documents with 0, 1, 2, ... labels.

    Args:
        labels: (N, L) 0/1 matrix, or a dict ``{split name: matrix}`` for one
            trace per split (y is then the share of the split's documents).
    """
    splits = labels if isinstance(labels, dict) else {"documents": labels}
    share = isinstance(labels, dict)
    fig = go.Figure()
    for i, (name, y) in enumerate(splits.items()):
        y = np.asarray(y)
        if y.ndim != 2:
            raise ValueError(f"labels of {name!r} must be a 2-D (documents x labels) array, got {y.shape}")
        sizes, counts = np.unique(y.sum(axis=1), return_counts=True)
        values = counts / counts.sum() if share else counts
        fig.add_trace(go.Bar(x=sizes, y=values, name=str(name), marker_color=_PALETTE[i % len(_PALETTE)]))
    fig.update_layout(title=title, template=_TEMPLATE, barmode="group", xaxis_title="labels per document",
                      yaxis_title="share of documents" if share else "documents")
    return _fit_title(fig)


def cooccurrence_heatmap(labels, groups, names=None, rows: str = "head", cols: str = "tail",
                         normalize: bool = True, title: str | None = None) -> go.Figure:
    """Heatmap of how often labels of one group co-occur with labels of another.

    Rows are the labels of group ``rows``, columns those of group ``cols``, each
    sorted by frequency. With ``normalize`` a cell is P(row label | column
    label): the share of the documents carrying the column label that also
    carry the row label; otherwise the number of documents carrying both.

    Args:
        labels: (N, L) 0/1 matrix.
        groups: (L,) group per label (``frequency_groups`` of training counts).
        names: (L,) label names.
    """
    y = np.asarray(labels)
    groups = np.asarray(groups).astype(str)
    if y.ndim != 2 or groups.shape != (y.shape[1],):
        raise ValueError(f"labels must be (N, L) and groups (L,); got {y.shape} and {groups.shape}")
    names = np.asarray(_names(names, y.shape[1]))
    counts = y.sum(axis=0)
    picked = []
    for g in (rows, cols):
        idx = np.flatnonzero(groups == g)
        if idx.size == 0:
            raise ValueError(f"no label in group {g!r}; groups present: {sorted(set(groups.tolist()))}")
        picked.append(idx[np.lexsort((idx, -counts[idx]))])
    r, c = picked
    both = (y[:, r].T @ y[:, c]).astype(float)                # (rows, cols) documents with both
    if normalize:
        both = both / np.maximum(counts[c], 1)[None, :]
    fig = go.Figure(go.Heatmap(z=both, x=names[c], y=names[r], colorscale="Blues",
                               colorbar=dict(title="P(row | col)" if normalize else "documents")))
    fig.update_layout(title=title or f"{rows} x {cols} label co-occurrence", template=_TEMPLATE,
                      xaxis_title=f"{cols} labels", yaxis_title=f"{rows} labels")
    fig.update_yaxes(autorange="reversed")
    return _fit_title(fig)


def lack_of_positives_curves(frame: pd.DataFrame, value: str = "pairs_without_positive",
                             title: str = "Lack of positives") -> go.Figure:
    """Share lacking positives against batch size: one line per (group, queue size).

    Colour encodes the label group, dash the queue size.

    Args:
        frame: output of :func:`abalone_core.analysis.lack_of_positives`.
        value: column to plot, e.g. ``pairs_without_positive`` or
            ``anchors_without_positive``.
    """
    _need(frame, ["batch_size", "queue_size", "group", value], "lack_of_positives_curves")
    fig = go.Figure()
    queues = sorted(frame["queue_size"].unique())
    for i, g in enumerate(_ordered(frame["group"])):
        for j, k in enumerate(queues):
            part = frame[(frame["group"] == g) & (frame["queue_size"] == k)].sort_values("batch_size")
            if part.empty:
                continue
            fig.add_trace(go.Scatter(x=part["batch_size"], y=part[value], mode="lines+markers",
                                     name=f"{g}, queue {k}", legendgroup=str(g),
                                     line=dict(color=_color(g, i), dash=_DASHES[j % len(_DASHES)])))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="batch size B",
                      yaxis_title=value.replace("_", " "), yaxis_tickformat=".0%")
    fig.update_xaxes(type="log")
    return _fit_title(fig)


def attraction_repulsion_bars(frame: pd.DataFrame, title: str = "Attraction and repulsion per label") -> go.Figure:
    """Per label, labels by frequency and coloured by group: the mean cosine between documents
    of the label (−S_att) and between them and the other documents (S_rep) on a y axis fitted
    to the values (top), and the gap between the two, −S_att − S_rep (bottom, bars labelled
    with their values): how much closer a label's documents are to each other than to the rest.

    Args:
        frame: output of :func:`abalone_core.analysis.attraction_repulsion` with
            a ``group`` column (pass ``groups=``).
    Returns:
        Figure with three traces per group: −S_att and S_rep markers (top), gap bars (bottom).
        A label carried by a single document has no pair, hence no −S_att and no bar.
    """
    _need(frame, ["label", "group", "n_anchors", "s_att", "s_rep"], "attraction_repulsion_bars")
    frame = frame.sort_values(["n_anchors", "label"], ascending=[False, True])
    x = _label_axis(frame)
    within, rest = -frame["s_att"], frame["s_rep"]
    gap = within - rest
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=("mean cosine: within the label (−S_att, filled) and to the rest "
                                        "(S_rep, open)", "gap −S_att − S_rep (higher: the label's documents "
                                        "are closer to each other than to the rest)"))
    for i, g in enumerate(_ordered(frame["group"])):
        sel = (frame["group"] == g).to_numpy()
        color = _color(g, i)
        for values, symbol, what in ((within, "circle", "within"), (rest, "circle-open", "to the rest")):
            fig.add_trace(go.Scatter(x=x[sel], y=values[sel], mode="markers", name=g, legendgroup=g,
                                     showlegend=what == "within", marker=dict(symbol=symbol, color=color, size=8),
                                     customdata=frame["n_anchors"][sel],
                                     hovertemplate="%{x}: " + what + " %{y:.3f}<br>%{customdata} documents"
                                                   "<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=x[sel], y=gap[sel], name=g, legendgroup=g, showlegend=False, marker_color=color,
                             text=["" if np.isnan(v) else f"{v:.2f}" for v in gap[sel]], textposition="outside",
                             textfont=dict(size=10), textangle=-90,
                             hovertemplate="%{x}: gap %{y:.3f}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(range=_fitted_range(pd.concat([within, rest]), least=0.05), title_text="mean cosine",
                     row=1, col=1)
    low, high = _fitted_range(pd.concat([gap, pd.Series([0.0])]), least=0.05)
    room = 0.3 * (high - low)  # for the value written beyond each bar's end
    fig.update_yaxes(range=[low - room, high + room], title_text="gap", row=2, col=1)
    # outside bar labels shrink to the bar's width unless a minimum size is set
    fig.update_layout(title=title, template=_TEMPLATE, height=660, margin=dict(t=110),
                      uniformtext=dict(minsize=10, mode="show"))
    # the panel titles sit just above their panels: lift them clear of the top tick labels
    fig.update_annotations(yshift=12, font_size=13)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(x))
    fig.update_xaxes(title_text="label (most frequent first)", row=2, col=1)
    return _fit_title(fig)


def term_share_bars(frames: dict, columns=("attraction_share", "repulsion_from_share"), by: str = "group",
                    agg: str = "sum", title: str = "Where the loss terms go") -> go.Figure:
    """Bars comparing how losses spread attraction / repulsion over labels.

    Args:
        frames: ``{loss name: frame}``, frames from
            :func:`abalone_core.analysis.term_counts` (with ``groups=`` when
            ``by="group"``), e.g. ``{"L_Base": ..., "L_MSC": ...}``.
        columns: one subplot per column.
        by: ``"group"`` (bars per label group, aggregated with ``agg``) or
            ``"label"`` (one bar per label, most frequent first).
        agg: ``"sum"`` (right for ``*_share`` columns) or ``"mean"`` (right for
            ``attraction_per_anchor``), used when ``by="group"``.
    Returns:
        Figure with ``len(frames) * len(columns)`` bar traces.
    """
    if by not in ("group", "label") or agg not in ("sum", "mean"):
        raise ValueError(f"by must be 'group' or 'label' and agg 'sum' or 'mean'; got {by!r}, {agg!r}")
    if not frames:
        raise ValueError("frames is empty: pass {loss name: term_counts frame}")
    columns = list(columns)
    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=[c.replace("_", " ") for c in columns])
    for i, (name, frame) in enumerate(frames.items()):
        _need(frame, ["label", "n_anchors"] + columns + (["group"] if by == "group" else []),
              "term_share_bars")
        if by == "group":
            table = frame.groupby("group")[columns].agg(agg)
            table = table.loc[_ordered(table.index)]
            x = list(table.index)
        else:
            table = frame.sort_values(["n_anchors", "label"], ascending=[False, True])
            x = list(_label_axis(table))
        for j, col in enumerate(columns):
            fig.add_trace(go.Bar(x=x, y=table[col].to_numpy(), name=str(name), legendgroup=str(name),
                                 showlegend=j == 0, marker_color=_PALETTE[i % len(_PALETTE)]),
                          row=1, col=j + 1)
    fig.update_layout(title=title, template=_TEMPLATE, barmode="group")
    fig.update_xaxes(type="category")
    return _fit_title(fig)


def f1_vs_frequency(f1, train_counts, groups=None, names=None,
                    title: str = "Per-label F1 against training frequency", color_by: str = "group") -> go.Figure:
    """Scatter of per-label F1 (percent) against training count (log x).

    Args:
        f1: (L,) per-label F1, or ``{run name: (L,) F1}`` to compare runs
            (marker symbol per run).
        train_counts: (L,) training documents per label.
        groups: (L,) group per label; default ``frequency_groups(train_counts)``.
        names: (L,) label names for hover text.
        color_by: ``"group"`` (colour = label group, symbol = run) or ``"loss"`` (colour =
            the run's loss, :data:`LOSS_COLORS`, symbol = label group; traces are named
            ``"<run> (<group>)"`` so :func:`color_by_loss` keeps them apart, and the legend has
            one entry per run and one per group, drawn by empty traces).
    Returns:
        Figure with one trace per (run, group), then (``color_by="loss"``) one legend-only
        trace per run and per group.
    """
    if color_by not in ("group", "loss"):
        raise ValueError(f"color_by must be 'group' or 'loss', got {color_by!r}")
    counts = np.asarray(train_counts)
    runs = f1 if isinstance(f1, dict) else {"F1": f1}
    groups = frequency_groups(counts) if groups is None else np.asarray(groups).astype(str)
    names = np.asarray(_names(names, counts.size))
    fig = go.Figure()
    for r, (run, values) in enumerate(runs.items()):
        values = np.asarray(values, dtype=float)
        if values.shape != counts.shape:
            raise ValueError(f"F1 of {run!r} has shape {values.shape}, train_counts has {counts.shape}")
        for i, g in enumerate(_ordered(groups)):
            sel = groups == g
            if color_by == "loss":
                label, color = f"{run} ({g})", loss_color(run) or _PALETTE[r % len(_PALETTE)]
                symbol = _SYMBOLS[i % len(_SYMBOLS)]
            else:
                label, color = (g if len(runs) == 1 else f"{run}, {g}"), _color(g, i)
                symbol = _SYMBOLS[r % len(_SYMBOLS)]
            fig.add_trace(go.Scatter(x=counts[sel], y=values[sel], mode="markers", name=label, text=names[sel],
                                     legendgroup=str(run) if color_by == "loss" else None,
                                     showlegend=color_by != "loss", marker=dict(color=color, symbol=symbol),
                                     hovertemplate="%{text}<br>%{x} training docs<br>F1 %{y:.1f}<extra></extra>"))
    if color_by == "loss":
        # a legend of (runs + groups) entries, not runs x groups: a colour per run, a symbol per group
        for r, run in enumerate(runs):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=str(run), legendgroup=str(run),
                                     marker=dict(color=loss_color(run) or _PALETTE[r % len(_PALETTE)],
                                                 symbol="circle", size=9), hoverinfo="skip"))
        for i, g in enumerate(_ordered(groups)):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{g} labels", legendgroup="groups",
                                     legendgrouptitle_text="symbol" if i == 0 else None,
                                     marker=dict(color="#777", symbol=_SYMBOLS[i % len(_SYMBOLS)], size=9),
                                     hoverinfo="skip"))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="training documents",
                      yaxis_title="F1 (%)")
    fig.update_xaxes(type="log")
    return _fit_title(fig)


def training_curves(frame: pd.DataFrame, x: str = "step", y: str = "loss", by: str = "run",
                    title: str = "Training loss") -> go.Figure:
    """Loss against step, one line per run.

    Args:
        frame: long frame with columns ``x``, ``y`` and ``by`` (run name; a
            single run if the column is absent).
    """
    _need(frame, [x, y], "training_curves")
    runs = frame.groupby(by, sort=False) if by in frame.columns else [(y, frame)]
    fig = go.Figure()
    for i, (name, part) in enumerate(runs):
        name = name[0] if isinstance(name, tuple) else name
        part = part.sort_values(x)
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines", name=str(name),
                                 line=dict(color=_PALETTE[i % len(_PALETTE)])))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title=x, yaxis_title=y)
    return _fit_title(fig)


def _fit_title(fig: go.Figure, width: int = 75) -> go.Figure:
    """Break a title longer than ``width`` characters into lines at word boundaries (plotly
    does not wrap titles, and a long one runs past the figure's edge), and widen the top
    margin by one line's height per extra line, so that it stays clear of the panels' titles."""
    import textwrap

    text = fig.layout.title.text or ""
    lines = text.split("<br>") if "<br>" in text or len(text) <= width else textwrap.wrap(text, width)
    if len(lines) < 2:
        return fig
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 100
    fig.update_layout(title_text="<br>".join(lines), margin_t=top + 24 * (len(lines) - 1))
    return fig


def _fitted_range(values, least: float = 1.0) -> list[float]:
    """A y range around ``values`` (not from 0), at least ``least`` wide, with a margin."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return [0.0, 1.0]
    low, high = float(v.min()), float(v.max())
    pad = max(least - (high - low), 0.0) / 2 + 0.1 * max(high - low, least)
    return [low - pad, high + pad]


def seed_scores(frame: pd.DataFrame, metrics=("micro_f1", "macro_f1"), by: str = "objective",
                panel: str = "dataset", names: dict | None = None,
                title: str = "Test scores over seeds") -> go.Figure:
    """One dot per run and a wide dash at the mean over seeds, per ``by`` value; one row of
    panels per metric, one column per ``panel`` value (dataset). Each panel's y axis is fitted
    to its values (not drawn from 0), so that a one-point difference is visible. A mean whose
    display name is a loss of :data:`LOSS_COLORS` takes its colour.

    Args:
        frame: one row per run with columns ``by``, ``panel`` and the metrics (e.g.
            :func:`abalone_core.sweep.records_table`).
        names: display names of the ``by`` values (e.g. ``{"msc": "L_MSC"}``).
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    _need(frame, [by, panel, *metrics], "seed_scores")
    names = names or {}
    panels = list(dict.fromkeys(frame[panel]))
    order = list(dict.fromkeys(frame[by]))
    fig = make_subplots(rows=len(metrics), cols=len(panels),
                        column_titles=[str(p) for p in panels], row_titles=[m.replace("_", " ") for m in metrics],
                        vertical_spacing=0.16, horizontal_spacing=0.08)
    for r, metric in enumerate(metrics, start=1):
        for c, value in enumerate(panels, start=1):
            part = frame[frame[panel] == value]
            means = part.groupby(by)[metric].mean().reindex(order)
            x = [names.get(o, o) for o in order]
            colors = [loss_color(name) or "#6baed6" for name in x]  # the book's colour of each loss
            fig.add_trace(go.Scatter(x=x, y=means.to_numpy(), mode="markers", name="mean over seeds",
                                     marker=dict(symbol="line-ew", size=26, color=colors,
                                                 line=dict(width=3, color=colors)),
                                     showlegend=(r == 1 and c == 1), legendgroup="mean",
                                     hovertemplate="%{x}: mean %{y:.2f}<extra></extra>"), row=r, col=c)
            fig.add_trace(go.Scatter(x=[names.get(o, o) for o in part[by]], y=part[metric], mode="markers",
                                     marker=dict(color="#08519c", size=6), name="one seed",
                                     showlegend=(r == 1 and c == 1), legendgroup="seed",
                                     hovertext=[f"seed {s}" for s in part.get("seed", [""] * len(part))]),
                          row=r, col=c)
            fig.update_yaxes(range=_fitted_range(part[metric]), nticks=6, tickformat=".1f", row=r, col=c)
    fig.update_xaxes(showticklabels=True, tickangle=-45, type="category", categoryorder="array",
                     categoryarray=[names.get(o, o) for o in order])
    fig.update_layout(title=title, template=_TEMPLATE, height=380 * len(metrics) + 140)
    return _fit_title(fig)


METRIC_TITLES = {  # a metric as a panel title reads it, with its decision rule
    "micro_f1": "micro-F1 at 0.5", "macro_f1": "macro-F1 at 0.5",
    "micro_f1_tuned": "micro-F1, one tuned threshold", "macro_f1_tuned": "macro-F1, one tuned threshold",
    "micro_f1_label_tuned": "micro-F1, a tuned threshold per label",
    "macro_f1_label_tuned": "macro-F1, a tuned threshold per label",
    "silhouette": "silhouette", "davies_bouldin": "Davies-Bouldin", "map": "mAP",
}


def claims_forest(claims: pd.DataFrame, title: str = "Paired differences between rows, with their 95 % interval",
                  tolerances: dict | None = None) -> go.Figure:
    """A forest plot of the claims of one dataset: each claim's mean paired difference (first
    row minus second) with its interval, a dashed line at 0 and a dotted one at an "on par"
    claim's bound. One panel per metric, since the units differ (F1 points, silhouette, ...).

    Args:
        claims: rows of :func:`abalone_core.report.claims.check_claims` (one dataset) with ``claim``,
            ``metric``, ``difference``, ``ci_low``, ``ci_high`` and ``verdict``; claims without
            a difference (not run) are left out.
        tolerances: ``{claim name: tolerance}`` (default: those of
            :data:`abalone_core.report.claims.CLAIMS`), drawn as a dotted line at minus the tolerance.
    Returns:
        Figure with one trace per metric; the x of each point is the difference, its error bar
        reaches ``ci_low`` and ``ci_high``.
    """
    from ..report.claims import CLAIMS

    _need(claims, ["claim", "metric", "difference", "ci_low", "ci_high", "verdict"], "claims_forest")
    tolerances = tolerances if tolerances is not None else {c.name: c.tolerance for c in CLAIMS}
    shown = claims[claims["difference"].notna()]
    if shown.empty:
        raise ValueError("claims_forest needs at least one claim with a difference (check_claims found none)")
    metrics = list(dict.fromkeys(shown["metric"]))
    fig = make_subplots(rows=len(metrics), cols=1, subplot_titles=[METRIC_TITLES.get(m, m.replace("_", " "))
                                                                   for m in metrics],
                        vertical_spacing=0.12,
                        row_heights=[float((shown["metric"] == m).sum()) for m in metrics])
    colors = {"holds": "#2ca02c", "fails": "#d62728", "inconclusive": "#7f7f7f", "not testable": "#ff7f0e"}
    for r, metric in enumerate(metrics, start=1):
        part = shown[shown["metric"] == metric]
        low = (part["difference"] - part["ci_low"]).to_numpy(float)
        high = (part["ci_high"] - part["difference"]).to_numpy(float)
        fig.add_trace(go.Scatter(
            x=part["difference"], y=part["claim"], mode="markers", name=metric, showlegend=False,
            marker=dict(size=10, color=[colors.get(v, "#333333") for v in part["verdict"]]),
            error_x=dict(type="data", symmetric=False, array=np.nan_to_num(high), arrayminus=np.nan_to_num(low),
                         thickness=2, width=6),
            customdata=[[v, "no interval" if pd.isna(lo) else f"interval [{lo:+.3g}, {hi:+.3g}]"]
                        for v, lo, hi in zip(part["verdict"], part["ci_low"], part["ci_high"])],
            hovertemplate="%{y}<br>difference %{x:+.3g}, %{customdata[1]}<br>%{customdata[0]}<extra></extra>"),
            row=r, col=1)
        fig.add_vline(x=0, line_dash="dash", line_color="#333333", row=r, col=1)
        for bound in sorted({-tolerances.get(c, 0.0) for c in part["claim"]} - {0.0}):
            fig.add_vline(x=bound, line_dash="dot", line_color="#ff7f0e", row=r, col=1)
        fig.update_yaxes(autorange="reversed", row=r, col=1)
        fig.update_xaxes(title_text="difference (first row minus second)", row=r, col=1)
    fig.update_layout(title=title, template=_TEMPLATE, height=140 + 60 * len(shown) + 60 * len(metrics),
                      margin=dict(l=20))
    return _fit_title(fig)


def balance_slider(frame: pd.DataFrame, columns=("attraction_share", "repulsion_share", "gradient_share"),
                   initial: tuple[float, float] | None = (0.1, 0.1),
                   title: str = "Who gets the attraction, the repulsion and the gradient") -> go.Figure:
    """Grouped bars per label group for each (beta, temperature), with one slider over the pairs.

    Every (beta, temperature) pair is a precomputed plotly frame and a step of a single
    slider (beta-major order), so the figure works on a static page without a kernel.

    Args:
        frame: tidy frame with columns ``beta``, ``temperature``, ``loss``, ``group`` and
            ``columns`` (shares in [0, 1]), e.g.
            :func:`abalone_core.analysis.balance.balance_grid`.
        columns: one subplot per column.
        initial: the (beta, temperature) shown first; the first pair if absent or None.
    Returns:
        Figure with ``n_losses * len(columns)`` bar traces, one frame and one slider
        step per (beta, temperature); frame names read ``β = <b>, τ = <t>``.
    """
    columns = list(columns)
    _need(frame, ["beta", "temperature", "loss", "group", *columns], "balance_slider")
    if frame.empty:
        raise ValueError("balance_slider needs a non-empty frame")
    pairs = sorted({(float(b), float(t)) for b, t in zip(frame["beta"], frame["temperature"])})
    loss_names = list(dict.fromkeys(frame["loss"]))
    groups = _ordered(frame["group"])
    start = pairs.index(tuple(map(float, initial))) if initial is not None and tuple(map(float, initial)) in pairs else 0

    def name(pair):
        return f"β = {pair[0]:g}, τ = {pair[1]:g}"

    def bars(pair, with_style: bool):
        part = frame[(frame["beta"] == pair[0]) & (frame["temperature"] == pair[1])]
        out = []
        for j, col in enumerate(columns):
            for i, loss in enumerate(loss_names):
                values = part[part["loss"] == loss].set_index("group")[col].reindex(groups)
                bar = dict(x=groups, y=values.to_numpy(dtype=float))
                if with_style:
                    bar.update(name=str(loss), legendgroup=str(loss), showlegend=j == 0,
                               marker_color=_PALETTE[i % len(_PALETTE)],
                               hovertemplate="%{x}: %{y:.1%}<extra>" + str(loss) + "</extra>")
                out.append(go.Bar(**bar))
        return out

    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=[c.replace("_", " ") for c in columns])
    for k, bar in enumerate(bars(pairs[start], True)):
        fig.add_trace(bar, row=1, col=k // len(loss_names) + 1)
    fig.frames = [go.Frame(name=name(p), data=bars(p, False), traces=list(range(len(fig.data)))) for p in pairs]
    steps = [dict(method="animate", label=name(p),
                  args=[[name(p)], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                    "transition": {"duration": 0}}]) for p in pairs]
    fig.update_layout(title=title, template=_TEMPLATE, barmode="group", height=480,
                      sliders=[dict(active=start, steps=steps, currentvalue={"prefix": ""}, pad={"t": 50})])
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_xaxes(type="category")
    return _fit_title(fig)


# One colour per loss across the whole book; settings of the same loss (L_MSC with two betas)
# share its colour and differ by the bars' pattern.
LOSS_COLORS = {"L_MLM": "#7f7f7f", "L_Base": "#1f77b4", "L_BQueue": "#17becf", "L_BQProto": "#9467bd",
               "L_MSC": "#d62728", "MulSupCon": "#8c564b", "BCE": "#2ca02c", "Focal": "#bcbd22",
               "ASL": "#e377c2", "L_MSC-FT": "#ff7f0e", "DB": "#aec7e8", "TF-IDF": "#393b79"}
_PATTERNS = ("", "/", ".", "x", "\\", "+")


def loss_color(name: str) -> str | None:
    """The book's colour of a loss named ``name`` (``"L_MSC (beta=1)"`` -> L_MSC's), or None."""
    key = str(name).split(" (")[0].strip()
    return LOSS_COLORS.get(key)


def color_by_loss(fig: go.Figure) -> go.Figure:
    """Recolour a figure's traces by the loss in their names (:data:`LOSS_COLORS`), in place.

    Traces whose names start with the same loss get its colour; the second, third, ...
    distinct setting of a loss (``"L_MSC (beta=1)"`` after ``"L_MSC (beta=0.1)"``) gets a
    bar pattern (bars) or a dash (lines). Traces naming no known loss keep their colour.
    """
    settings: dict[str, list[str]] = {}
    for trace in fig.data:
        color = loss_color(trace.name)
        if color is None:
            continue
        key = str(trace.name).split(" (")[0].strip()
        seen = settings.setdefault(key, [])
        if trace.name not in seen:
            seen.append(trace.name)
        k = seen.index(trace.name)
        if isinstance(trace, go.Bar):
            trace.update(marker_color=color, marker_pattern_shape=_PATTERNS[k % len(_PATTERNS)])
        elif isinstance(trace, go.Scatter):
            trace.update(marker_color=color, line_color=color, line_dash=_DASHES[k % len(_DASHES)])
    return fig


def loss_gradient_curves(frame: pd.DataFrame, x: str = "p", y: str = "gradient",
                         title: str = "Gradient of each loss with respect to the logit") -> go.Figure:
    """One line per (loss, target): how hard a loss pushes a logit, against the predicted probability.

    Args:
        frame: columns ``loss`` (the paper's row name, e.g. ``"BCE"``), ``target``
            (``"positive"`` / ``"negative"``), ``x`` and ``y``.
    Returns:
        Figure with one trace per (loss, target), named ``"<loss> (<target>)"`` and coloured by
        loss (:data:`LOSS_COLORS`): solid for positives, dashed for negatives.
    """
    _need(frame, ["loss", "target", x, y], "loss_gradient_curves")
    fig = go.Figure()
    for (loss, target), part in frame.groupby(["loss", "target"], sort=False):
        part = part.sort_values(x)
        fig.add_trace(go.Scatter(x=part[x], y=part[y], mode="lines", name=f"{loss} ({target})",
                                 legendgroup=str(loss),
                                 line=dict(color=loss_color(loss) or "#333333",
                                           dash="solid" if target == "positive" else "dash")))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="predicted probability of the label",
                      yaxis_title="gradient size |dL/dlogit|")
    return _fit_title(fig)
