"""Figures of the representations themselves (chapter 7): the clustering scores against the
share of label combinations kept (the paper's Figure 2), a 2-D map of one encoder's documents,
and side-by-side maps of the same documents under several encoders, aligned to one another.

Colours and the plotly template are the book's (:mod:`abalone_core.analysis.plots`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..evaluation.metrics import frequency_groups
from .plots import _PALETTE, _SYMBOLS, _TEMPLATE, _color, _names, _need, _ordered, _fit_title


def clustering_curves(frame: pd.DataFrame, by: str = "loss",
                      title: str = "Clustering quality against share of label combinations") -> go.Figure:
    """Silhouette (left) and Davies-Bouldin (right) against the share kept, one line per run.

    Args:
        frame: rows of :func:`abalone_core.analysis.clustering_scores`, stacked
            with a ``by`` column naming the run (a single run if absent).
    Returns:
        Figure with two traces per run.
    """
    _need(frame, ["share", "silhouette", "davies_bouldin"], "clustering_curves")
    runs = frame.groupby(by, sort=False) if by in frame.columns else [("scores", frame)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Silhouette (higher is better)",
                                                        "Davies-Bouldin (lower is better)"))
    for i, (name, part) in enumerate(runs):
        name = name[0] if isinstance(name, tuple) else name
        part = part.sort_values("share")
        for j, col in enumerate(("silhouette", "davies_bouldin")):
            fig.add_trace(go.Scatter(x=100 * part["share"], y=part[col], mode="lines+markers", name=str(name),
                                     legendgroup=str(name), showlegend=j == 0,
                                     line=dict(color=_PALETTE[i % len(_PALETTE)])), row=1, col=j + 1)
    fig.update_layout(title=title, template=_TEMPLATE)
    fig.update_xaxes(title_text="label combinations kept (%)")
    return _fit_title(fig)


def umap_scatter(xy, color, hover=None, title: str = "UMAP of the embeddings") -> go.Figure:
    """2-D scatter of projected documents, one trace per colour category.

    Args:
        xy: (N, 2) coordinates, e.g. from :func:`abalone_core.analysis.project_umap`.
        color: (N,) category per document (e.g. the group of its rarest label).
        hover: optional (N,) hover text (e.g. label names or a text snippet).
    """
    xy = np.asarray(xy)
    color = np.asarray(color).astype(str)
    if xy.ndim != 2 or xy.shape[1] != 2 or color.shape != (xy.shape[0],):
        raise ValueError(f"xy must be (N, 2) and color (N,); got {xy.shape} and {color.shape}")
    hover = None if hover is None else np.asarray(hover).astype(str)
    if hover is not None and hover.shape != color.shape:
        raise ValueError(f"hover must have one entry per point ({color.size}), got {hover.shape}")
    fig = go.Figure()
    for i, c in enumerate(_ordered(color)):
        sel = color == c
        fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=c,
                                 text=None if hover is None else hover[sel],
                                 hoverinfo="text" if hover is not None else "x+y+name",
                                 marker=dict(size=5, opacity=0.7, color=_color(c, i))))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="UMAP 1", yaxis_title="UMAP 2")
    return _fit_title(fig)


def align_to(xy, reference) -> np.ndarray:
    """``xy`` rotated (or reflected) and shifted to best match ``reference`` (orthogonal Procrustes).

    Two UMAP maps of different embeddings live in unrelated coordinates: a map may come out
    rotated or mirrored with the same neighbourhoods. Aligning each map to a reference map of the
    same documents removes that arbitrary part (distances inside a map are unchanged) so that the
    maps can be laid side by side; it does not make positions comparable in any deeper sense.

    Args:
        xy, reference: (N, 2) coordinates of the same N documents, in the same order.
    Returns:
        (N, 2) float array: ``(xy - mean(xy)) @ R + mean(reference)`` with R orthogonal.
    """
    from scipy.linalg import orthogonal_procrustes

    a, b = np.asarray(xy, dtype=float), np.asarray(reference, dtype=float)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape != b.shape:
        raise ValueError(f"xy and reference must both be (N, 2), got {a.shape} and {b.shape}")
    rotation, _ = orthogonal_procrustes(a - a.mean(axis=0), b - b.mean(axis=0))
    return (a - a.mean(axis=0)) @ rotation + b.mean(axis=0)


def umap_panels(maps: dict, labels, chosen, names=None, groups=None, unlabelled: str = "hide",
                align: bool = True, title: str = "The same test documents under each encoder") -> go.Figure:
    """Side-by-side 2-D maps of the same documents, one panel per encoder, coloured by a few labels.

    Every panel shows the same documents on the same axis range. Documents carrying one of the
    ``chosen`` labels are drawn in that label's group colour (a document with two chosen labels
    appears once per label); the other labelled documents are light grey; documents without any
    label are hidden (``unlabelled="hide"``) or drawn fainter still (``"grey"``).

    Args:
        maps: ``{encoder name: (N, 2) coordinates}`` of the same N documents in the same order.
        labels: (N, L) 0/1 labels of the documents.
        chosen: label indices to colour (e.g. the values of
            :func:`abalone_core.evaluation.metrics.example_labels`).
        names: (L,) label names for the legend.
        groups: (L,) group of each label (legend and colour); default from the label counts of
            ``labels``.
        unlabelled: ``"hide"`` or ``"grey"``.
        align: rotate each map onto the first with :func:`align_to` (maps from different
            embeddings are otherwise arbitrarily rotated or mirrored).
    Returns:
        Figure with one panel per map, shared axes and one fixed range for all of them; per panel
        one trace for the other labelled documents, one per chosen label, and with
        ``unlabelled="grey"`` one for the unlabelled documents.
    """
    if unlabelled not in ("hide", "grey"):
        raise ValueError(f"unlabelled must be 'hide' or 'grey', got {unlabelled!r}")
    if not maps:
        raise ValueError("maps is empty: pass {encoder name: (N, 2) coordinates}")
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be a (N, L) matrix, got shape {y.shape}")
    names = np.asarray(_names(names, y.shape[1]))
    groups = frequency_groups(y.sum(axis=0)) if groups is None else np.asarray(groups).astype(str)
    chosen = [int(c) for c in chosen]
    if any(not 0 <= c < y.shape[1] for c in chosen):
        raise ValueError(f"chosen labels must be indices in [0, {y.shape[1]}), got {chosen}")
    coords = {}
    reference = None
    for name, xy in maps.items():
        xy = np.asarray(xy, dtype=float)
        if xy.shape != (y.shape[0], 2):
            raise ValueError(f"map {name!r} has shape {xy.shape}; expected ({y.shape[0]}, 2), one row per document")
        if align and reference is not None:
            xy = align_to(xy, reference)
        reference = xy if reference is None else reference
        coords[name] = xy
    has_label = y.any(axis=1)
    shown = has_label if unlabelled == "hide" else np.ones(len(y), bool)
    everything = np.concatenate([xy[shown] for xy in coords.values()]) if shown.any() else np.zeros((1, 2))
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-9)
    fig = make_subplots(rows=1, cols=len(coords), subplot_titles=[str(n) for n in coords],
                        shared_xaxes="all", shared_yaxes="all", horizontal_spacing=0.03)
    for col, (name, xy) in enumerate(coords.items(), start=1):
        first = col == 1
        if unlabelled == "grey":
            sel = ~has_label
            fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name="no label",
                                     legendgroup="no label", showlegend=first, hoverinfo="skip",
                                     marker=dict(size=3, color="#f0f0f0")), row=1, col=col)
        sel = has_label & ~(y[:, chosen].any(axis=1) if chosen else np.zeros(len(y), bool))
        fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name="other labels",
                                 legendgroup="other labels", showlegend=first, hoverinfo="skip",
                                 marker=dict(size=3, color="#d0d0d0")), row=1, col=col)
        for i, c in enumerate(chosen):
            sel = y[:, c] > 0
            g = str(groups[c])
            fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers",
                                     name=f"{names[c]} ({g}, {int(sel.sum())} docs)", legendgroup=str(c),
                                     showlegend=first, hovertemplate=f"{names[c]}<extra></extra>",
                                     marker=dict(size=7, opacity=0.85, color=_color(g, i),
                                                 symbol=_SYMBOLS[i % len(_SYMBOLS)],
                                                 line=dict(width=0.5, color="#222222"))),
                          row=1, col=col)
    fig.update_xaxes(range=[low[0] - pad[0], high[0] + pad[0]], title_text="UMAP 1", showticklabels=False)
    fig.update_yaxes(range=[low[1] - pad[1], high[1] + pad[1]], showticklabels=False)
    fig.update_yaxes(title_text="UMAP 2", row=1, col=1)
    fig.update_layout(title=title, template=_TEMPLATE, height=420, legend=dict(orientation="h", y=-0.15))
    return _fit_title(fig)


__all__ = ["clustering_curves", "umap_scatter", "align_to", "umap_panels"]
