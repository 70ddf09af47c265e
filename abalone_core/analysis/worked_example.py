"""A worked example of L_Base and L_MSC small enough to check with a calculator.

Used by chapter 0 (``notebooks/00_worked_example``). A batch of four documents with
three labels, a memory queue of two keys and one prototype per label, all of them unit
vectors in the plane placed at multiples of 60 degrees, so that every cosine is 1, 1/2,
-1/2 or -1. Every table below is computed with plain loops written from the formulas of
the method page (one anchor, one key, one label at a time), not with
:mod:`abalone_core.method.losses`; the chapter and ``tests/test_worked_example.py`` check that
the library gives the same numbers (:func:`library_terms`).

Notation (as in the method page): anchors i are the batch documents; the instance keys
are the batch (without the anchor itself) and the queue; ``s(i, k) = <z_i, z_k> / tau``;
``u(i, l) = |y_i | y_l|`` and ``n(i, l) = |y_i & y_l|``.

* L_Base (in-batch): ``w_ij = n(i, j) / u(i, j)``, ``N(i) = sum_j w_ij``,
  ``l_i = -(1/N(i)) sum_j w_ij [s(i, j) - log D_i]``, ``D_i = sum_{j != i} exp s(i, j)``.
* L_MSC: for each label c of i, positives P(c, i) are the other instance keys carrying
  c plus prototype c, with ``f(i, l) = 1/u(i, l)`` (1 for the prototype),
  ``N(i, c) = sum_{l in P(c, i)} f(i, l)``;
  ``D_i = beta * sum_{instance keys k != i} exp s(i, k) + sum_{prototypes} exp s(i, c)``;
  ``l_i = -(1/|y_i|) sum_c (1/N(i, c)) sum_{l in P(c, i)} f(i, l) [s(i, l) - log D_i]``.

The chapter's interactive figure on a real batch (how attraction, repulsion and gradient
are shared between head, medium and tail labels) is computed by :mod:`abalone_core.analysis.balance`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import pandas as pd

LABELS = ("water", "food", "rescue")


# --------------------------------------------------------------------------- the example
@dataclass(frozen=True)
class Vector:
    """One point of the example: a document of the batch, a queue key or a prototype.

    ``angle`` is in degrees on the unit circle; ``labels`` are label names.
    """

    name: str
    role: str                    # "batch", "queue" or "prototype"
    angle: float
    labels: tuple[str, ...]

    @property
    def xy(self) -> tuple[float, float]:
        """The unit vector (cos angle, sin angle)."""
        rad = math.radians(self.angle)
        return (math.cos(rad), math.sin(rad))


@dataclass(frozen=True)
class WorkedExample:
    """The batch, the queue, the prototypes and the two hyper-parameters.

    ``temperature`` is tau (0.5 here, so that s = 2 cos: 2, 1, -1 or -2; the paper uses
    0.1); ``beta`` weighs the instance keys in the L_MSC denominator (paper: 0.1).
    """

    batch: tuple[Vector, ...]
    queue: tuple[Vector, ...]
    prototypes: tuple[Vector, ...]
    label_names: tuple[str, ...] = LABELS
    temperature: float = 0.5
    beta: float = 0.1

    def replace(self, **changes) -> "WorkedExample":
        """A copy with some fields changed, e.g. ``ex.replace(beta=1.0)``."""
        return replace(self, **changes)

    def add_queue_key(self, name: str, angle: float, labels) -> "WorkedExample":
        """A copy with one more queue key (the newest, appended at the end)."""
        key = Vector(name, "queue", float(angle), tuple(labels))
        return replace(self, queue=self.queue + (key,))

    @property
    def instance_keys(self) -> tuple[Vector, ...]:
        """The batch then the queue: the instance keys H."""
        return self.batch + self.queue

    def arrays(self) -> dict:
        """The example as float64 arrays for :mod:`abalone_core.method.losses`:
        ``z`` (4, 2), ``y`` (4, 3), ``queue_z`` (K, 2), ``queue_y`` (K, 3), ``prototypes`` (3, 2)."""
        def xy(vs):
            return np.array([v.xy for v in vs], dtype=np.float64).reshape(len(vs), 2)

        def multi_hot(vs):
            return np.array([[float(c in v.labels) for c in self.label_names] for v in vs],
                            dtype=np.float64).reshape(len(vs), len(self.label_names))

        return {"z": xy(self.batch), "y": multi_hot(self.batch), "queue_z": xy(self.queue),
                "queue_y": multi_hot(self.queue), "prototypes": xy(self.prototypes)}


def example(temperature: float = 0.5, beta: float = 0.1) -> WorkedExample:
    """The chapter's example (used by chapter 0).

    Batch: d1 {water, food} at 0 degrees, d2 {water} at 60, d3 {water} at 300,
    d4 {rescue} at 180. Queue: q1 {rescue} at 120, q2 {food} at 240. Prototypes:
    water at 0, food at 240, rescue at 180.

    * d1 carries two labels and shares one of them (water) with d2 and d3;
    * its other label, food, has no positive in the batch: the queue (q2) and the
      prototype supply one;
    * the tail label rescue is carried by d4 alone in the batch: d4 has no positive
      at all under L_Base and is left out of that loss.
    """
    batch = (Vector("d1", "batch", 0.0, ("water", "food")),
             Vector("d2", "batch", 60.0, ("water",)),
             Vector("d3", "batch", 300.0, ("water",)),
             Vector("d4", "batch", 180.0, ("rescue",)))
    queue = (Vector("q1", "queue", 120.0, ("rescue",)),
             Vector("q2", "queue", 240.0, ("food",)))
    prototypes = (Vector("p_water", "prototype", 0.0, ("water",)),
                  Vector("p_food", "prototype", 240.0, ("food",)),
                  Vector("p_rescue", "prototype", 180.0, ("rescue",)))
    return WorkedExample(batch, queue, prototypes, LABELS, temperature, beta)


# --------------------------------------------------------------------------- small pieces
def _cos(a: Vector, b: Vector) -> float:
    (ax, ay), (bx, by) = a.xy, b.xy
    return ax * bx + ay * by


def _s(ex: WorkedExample, a: Vector, b: Vector) -> float:
    """s(a, b) = <a, b> / tau."""
    return _cos(a, b) / ex.temperature


def _union(a: Vector, b: Vector) -> int:
    return len(set(a.labels) | set(b.labels))


def _shared(a: Vector, b: Vector) -> int:
    return len(set(a.labels) & set(b.labels))


def _others(ex: WorkedExample, anchor: Vector) -> list[Vector]:
    """The instance keys of the anchor: the batch without the anchor, then the queue."""
    return [k for k in ex.instance_keys if k is not anchor]


def _batch_others(ex: WorkedExample, anchor: Vector) -> list[Vector]:
    return [k for k in ex.batch if k is not anchor]


def _prototype(ex: WorkedExample, label: str) -> Vector:
    for p in ex.prototypes:
        if p.labels == (label,):
            return p
    raise ValueError(f"no prototype for label {label!r}")


def _labels_text(v: Vector) -> str:
    return "{" + ", ".join(v.labels) + "}"


def _fraction(x: float) -> str:
    return str(Fraction(x).limit_denominator(12))


# --------------------------------------------------------------------------- the tables
def vectors_table(ex: WorkedExample) -> pd.DataFrame:
    """Every vector of the example (used by chapter 0).

    Returns:
        One row per vector (batch, then queue, then prototypes), index ``name``;
        columns ``role``, ``labels`` (text), ``angle`` (degrees), ``x``, ``y`` (the unit
        vector's coordinates, unitless).
    """
    rows = [{"name": v.name, "role": v.role, "labels": _labels_text(v), "angle": v.angle,
             "x": round(v.xy[0], 6), "y": round(v.xy[1], 6)}
            for v in ex.batch + ex.queue + ex.prototypes]
    return pd.DataFrame(rows).set_index("name")


def similarity_table(ex: WorkedExample) -> pd.DataFrame:
    """s(i, k) = cos(z_i, z_k) / tau for every anchor and every key (used by chapter 0).

    Returns:
        (B anchors) x (B + K + L keys) frame, rows ``d1..d4``, columns the batch, the
        queue and the prototypes; unitless logits. The anchor's own entry is NaN: an
        anchor is never its own key.
    """
    keys = ex.instance_keys + ex.prototypes
    rows = {}
    for a in ex.batch:
        rows[a.name] = {k.name: (float("nan") if k is a else _s(ex, a, k)) for k in keys}
    return pd.DataFrame.from_dict(rows, orient="index")[[k.name for k in keys]]


def jaccard_table(ex: WorkedExample) -> pd.DataFrame:
    """The L_Base weights w_ij = |y_i & y_j| / |y_i | y_j| inside the batch (used by chapter 0).

    Returns:
        (B) x (B + 1) frame: rows are the anchors, columns the batch documents (0 on the
        diagonal: j = i is excluded) and ``N(i)``, the row sum. An anchor with N(i) = 0
        has no positive and is left out of L_Base. Weights are unitless, in [0, 1].
    """
    rows = {}
    for a in ex.batch:
        row = {}
        for k in ex.batch:
            row[k.name] = 0.0 if k is a else _shared(a, k) / _union(a, k)
        row["N(i)"] = sum(row.values())
        rows[a.name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def positives_table(ex: WorkedExample) -> pd.DataFrame:
    """The positives of L_MSC, one row per (anchor i, label c of i) (used by chapter 0).

    Returns:
        Frame with columns ``anchor``, ``label``, ``in_batch`` / ``in_queue`` (names of
        the instance keys carrying c, with f(i, l) = 1/u(i, l) in brackets),
        ``prototype`` (with f = 1), ``N(i,c)`` (sum of the f, a float >= 1) and
        ``lacks_in_batch`` (True when no other batch document carries c: L_Base alone
        would give this label no attraction).
    """
    rows = []
    for a in ex.batch:
        for c in a.labels:
            in_batch = [k for k in _batch_others(ex, a) if c in k.labels]
            in_queue = [k for k in ex.queue if c in k.labels]
            n = sum(1.0 / _union(a, k) for k in in_batch + in_queue) + 1.0
            rows.append({
                "anchor": a.name, "label": c,
                "in_batch": ", ".join(f"{k.name} ({_fraction(1 / _union(a, k))})" for k in in_batch) or "-",
                "in_queue": ", ".join(f"{k.name} ({_fraction(1 / _union(a, k))})" for k in in_queue) or "-",
                "prototype": f"{_prototype(ex, c).name} (1)",
                "N(i,c)": n,
                "lacks_in_batch": not in_batch,
            })
    return pd.DataFrame(rows)


def _msc_weights(ex: WorkedExample, a: Vector) -> dict[str, float]:
    """Attraction weight of each key for anchor a under L_MSC (sum 1 when a has labels)."""
    keys = _others(ex, a)
    weights = {k.name: 0.0 for k in keys + list(ex.prototypes)}
    if not a.labels:
        return weights
    for c in a.labels:
        positives = [k for k in keys if c in k.labels]
        n_ic = sum(1.0 / _union(a, k) for k in positives) + 1.0
        for k in positives:
            weights[k.name] += (1.0 / _union(a, k)) / n_ic / len(a.labels)
        weights[_prototype(ex, c).name] += 1.0 / n_ic / len(a.labels)
    return weights


def _base_weights(ex: WorkedExample, a: Vector) -> dict[str, float]:
    """Attraction weight w_ij / N(i) of each batch key for anchor a under L_Base (all 0 if N(i) = 0)."""
    keys = _batch_others(ex, a)
    w = {k.name: _shared(a, k) / _union(a, k) if _union(a, k) else 0.0 for k in keys}
    n_i = sum(w.values())
    return {name: (v / n_i if n_i > 0 else 0.0) for name, v in w.items()}


def attraction_table(ex: WorkedExample, loss: str = "msc") -> pd.DataFrame:
    """How each anchor's attraction (the numerator terms) is spread over its keys (used by chapter 0).

    ``loss="base"``: w_ij / N(i) over the other batch documents. ``loss="msc"``: the
    weight in front of log p(i, k) in l_i, summed over the labels of i:
    ``(1/|y_i|) sum_{c in y_i & y_k} f(i, k) / N(i, c)`` for an instance key and
    ``1 / (|y_i| N(i, c))`` for prototype c.

    Returns:
        (B) x (keys) frame of unitless weights; NaN on the anchor's own entry. Each row
        sums to 1 for an anchor in the loss and to 0 for an anchor the loss leaves out
        (d4 under L_Base).
    """
    if loss not in ("base", "msc"):
        raise ValueError(f"loss must be 'base' or 'msc', got {loss!r}")
    keys = ex.batch if loss == "base" else ex.instance_keys + ex.prototypes
    rows = {}
    for a in ex.batch:
        w = _base_weights(ex, a) if loss == "base" else _msc_weights(ex, a)
        rows[a.name] = {k.name: (float("nan") if k is a else w[k.name]) for k in keys}
    return pd.DataFrame.from_dict(rows, orient="index")[[k.name for k in keys]]


def _denominators(ex: WorkedExample, a: Vector) -> dict[str, float]:
    batch = sum(math.exp(_s(ex, a, k)) for k in _batch_others(ex, a))
    queue = sum(math.exp(_s(ex, a, k)) for k in ex.queue)
    protos = sum(math.exp(_s(ex, a, p)) for p in ex.prototypes)
    return {"batch": batch, "queue": queue, "prototypes": protos,
            "D_Base": batch, "D_MSC": ex.beta * (batch + queue) + protos}


def denominator_table(ex: WorkedExample) -> pd.DataFrame:
    """The denominators (the repulsion side) of each anchor (used by chapter 0).

    Returns:
        One row per anchor with ``sum exp s: batch`` (the other batch documents),
        ``sum exp s: queue``, ``sum exp s: prototypes``, ``D_Base`` (= the batch sum),
        ``D_MSC`` (= beta x (batch + queue) + prototypes), ``prototype share`` (of D_MSC,
        in [0, 1]) and the logs ``log D_Base``, ``log D_MSC`` (natural logs).
    """
    rows = {}
    for a in ex.batch:
        d = _denominators(ex, a)
        rows[a.name] = {"sum exp s: batch": d["batch"], "sum exp s: queue": d["queue"],
                        "sum exp s: prototypes": d["prototypes"], "D_Base": d["D_Base"], "D_MSC": d["D_MSC"],
                        "prototype share": d["prototypes"] / d["D_MSC"],
                        "log D_Base": math.log(d["D_Base"]), "log D_MSC": math.log(d["D_MSC"])}
    return pd.DataFrame.from_dict(rows, orient="index")


def base_terms(ex: WorkedExample) -> pd.DataFrame:
    """Per-anchor L_Base terms (used by chapter 0).

    ``l_i = -(1/N(i)) sum_j w_ij [s(i, j) - log D_i]``, written as
    ``log D_i - pull_i`` with ``pull_i = sum_j (w_ij / N(i)) s(i, j)``.

    Returns:
        One row per anchor: ``labels``, ``N(i)``, ``in_loss`` (N(i) > 0), ``pull``
        (weighted mean similarity of the positives, in units of 1/tau), ``log D``
        and ``l_i`` (nats; NaN for an anchor left out).
    """
    rows = {}
    for a in ex.batch:
        keys = _batch_others(ex, a)
        log_d = math.log(_denominators(ex, a)["D_Base"])
        w = {k.name: _shared(a, k) / _union(a, k) for k in keys}
        n_i = sum(w.values())
        if n_i > 0:
            term = -sum(w[k.name] * (_s(ex, a, k) - log_d) for k in keys) / n_i
            pull = sum(w[k.name] / n_i * _s(ex, a, k) for k in keys)
        else:
            term = pull = float("nan")
        rows[a.name] = {"labels": _labels_text(a), "N(i)": n_i, "in_loss": n_i > 0, "pull": pull,
                        "log D": log_d, "l_i": term}
    return pd.DataFrame.from_dict(rows, orient="index")


def msc_label_terms(ex: WorkedExample) -> pd.DataFrame:
    """L_MSC's inner terms, one row per (anchor i, label c of i) (used by chapter 0).

    ``t(i, c) = -(1/N(i, c)) sum_{l in P(c, i)} f(i, l) [s(i, l) - log D_i]``; l_i is
    the mean of t(i, c) over the labels of i.

    Returns:
        Frame with ``anchor``, ``label``, ``N(i,c)``, ``log D`` (of the anchor) and
        ``t(i,c)`` (nats).
    """
    rows = []
    for a in ex.batch:
        log_d = math.log(_denominators(ex, a)["D_MSC"])
        for c in a.labels:
            positives = [k for k in _others(ex, a) if c in k.labels]
            proto = _prototype(ex, c)
            n_ic = sum(1.0 / _union(a, k) for k in positives) + 1.0
            total = sum((1.0 / _union(a, k)) * (_s(ex, a, k) - log_d) for k in positives)
            total += 1.0 * (_s(ex, a, proto) - log_d)
            rows.append({"anchor": a.name, "label": c, "N(i,c)": n_ic, "log D": log_d, "t(i,c)": -total / n_ic})
    return pd.DataFrame(rows)


def msc_terms(ex: WorkedExample) -> pd.DataFrame:
    """Per-anchor L_MSC terms (used by chapter 0).

    Returns:
        One row per anchor: ``labels``, ``|y_i|``, ``pull`` (sum over keys of the
        attraction weight of :func:`attraction_table` times s(i, k)), ``log D`` (of
        D_MSC) and ``l_i`` = mean of t(i, c) over the anchor's labels (nats), which
        equals ``log D - pull``; NaN for an anchor without labels.
    """
    per_label = msc_label_terms(ex)
    rows = {}
    for a in ex.batch:
        log_d = math.log(_denominators(ex, a)["D_MSC"])
        w = _msc_weights(ex, a)
        keys = _others(ex, a) + list(ex.prototypes)
        pull = sum(w[k.name] * _s(ex, a, k) for k in keys) if a.labels else float("nan")
        mine = per_label[per_label["anchor"] == a.name]["t(i,c)"]
        term = float(mine.mean()) if len(mine) else float("nan")
        rows[a.name] = {"labels": _labels_text(a), "|y_i|": len(a.labels), "pull": pull, "log D": log_d, "l_i": term}
    return pd.DataFrame.from_dict(rows, orient="index")


def gradient_table(ex: WorkedExample, loss: str = "msc") -> pd.DataFrame:
    """d l_i / d s(i, k): the net force of each key on each anchor (used by chapter 0).

    Writing l_i = log D_i - sum_k a_ik s(i, k) with attraction weights a_ik summing to 1
    (:func:`attraction_table`), the derivative is ``q_ik - a_ik`` with
    ``q_ik = g(k) exp s(i, k) / D_i`` the key's share of the denominator (g = 1 under
    L_Base; beta for instance keys and 1 for prototypes under L_MSC). Negative: the
    key pulls the anchor (attraction wins); positive: it pushes.

    Returns:
        (B) x (keys) frame, unitless; each row sums to 0; NaN on the anchor's own
        entry and on the whole row of an anchor the loss leaves out.
    """
    if loss not in ("base", "msc"):
        raise ValueError(f"loss must be 'base' or 'msc', got {loss!r}")
    keys = ex.batch if loss == "base" else ex.instance_keys + ex.prototypes
    rows = {}
    for a in ex.batch:
        d = _denominators(ex, a)
        if loss == "base":
            w, denom, in_loss = _base_weights(ex, a), d["D_Base"], sum(_base_weights(ex, a).values()) > 0
        else:
            w, denom, in_loss = _msc_weights(ex, a), d["D_MSC"], bool(a.labels)
        row = {}
        for k in keys:
            if k is a or not in_loss:
                row[k.name] = float("nan")
                continue
            g = 1.0 if (loss == "base" or k.role == "prototype") else ex.beta
            row[k.name] = g * math.exp(_s(ex, a, k)) / denom - w[k.name]
        rows[a.name] = row
    return pd.DataFrame.from_dict(rows, orient="index")[[k.name for k in keys]]


def totals(ex: WorkedExample) -> pd.DataFrame:
    """The two losses: means of the per-anchor terms (used by chapter 0).

    Returns:
        Index ``L_Base``, ``L_MSC``; columns ``value`` (nats), ``anchors`` (anchors
        averaged) and ``rule`` (which anchors count).
    """
    base = base_terms(ex)["l_i"].dropna()
    msc = msc_terms(ex)["l_i"].dropna()
    return pd.DataFrame({
        "value": [float(base.mean()) if len(base) else 0.0, float(msc.mean()) if len(msc) else 0.0],
        "anchors": [len(base), len(msc)],
        "rule": ["mean over anchors with N(i) > 0", "mean over anchors with at least one label"],
    }, index=["L_Base", "L_MSC"])


def library_terms(ex: WorkedExample) -> pd.DataFrame:
    """The same per-anchor terms from :mod:`abalone_core.method.losses` (used by chapter 0).

    The library returns a mean, not per-anchor values. One anchor's term is the loss of
    a batch holding that anchor alone, with the other batch documents moved to the
    queue: the anchor then sees exactly the same keys with the same labels and the same
    weights (beta weighs batch and queue keys alike). For L_Base the single-anchor call
    is ``contrastive_loss(variant="bqueue")`` (L_Base whose keys include the queue), for
    L_MSC it is ``msc_loss``.

    Returns:
        One row per anchor: ``l_i Base`` and ``l_i MSC`` (nats; NaN where the loss
        leaves the anchor out), float64.
    """
    import torch

    from ..method.losses import contrastive_loss, msc_loss

    arr = {k: torch.tensor(v, dtype=torch.float64) for k, v in ex.arrays().items()}
    base_in = base_terms(ex)["in_loss"]
    rows = {}
    for i, a in enumerate(ex.batch):
        rest = [j for j in range(len(ex.batch)) if j != i]
        qz_base, qy_base = arr["z"][rest], arr["y"][rest]
        qz = torch.cat([qz_base, arr["queue_z"]])
        qy = torch.cat([qy_base, arr["queue_y"]])
        zi, yi = arr["z"][i:i + 1], arr["y"][i:i + 1]
        base = contrastive_loss(zi, yi, variant="bqueue", temperature=ex.temperature, queue_z=qz_base,
                                queue_y=qy_base)
        msc = msc_loss(zi, yi, arr["prototypes"], temperature=ex.temperature, beta=ex.beta, queue_z=qz, queue_y=qy)
        rows[a.name] = {"l_i Base": float(base) if base_in[a.name] else float("nan"),
                        "l_i MSC": float(msc) if a.labels else float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")
