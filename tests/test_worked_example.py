"""The worked example of chapter 0 (abalone_core.analysis.worked_example): its tables against the
library's losses, an independent loop reference (tests/reference.py) and autograd; the
numbers quoted in the chapter's prose; the real-batch grid behind the slider figure; the
chapter's structure."""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from abalone_core import analysis
from abalone_core.method import losses
from abalone_core.analysis import worked_example as we
from abalone_core.analysis.balance import balance_grid, repulsion_by_label
from abalone_core.evaluation.metrics import frequency_groups
from reference import loop_loss

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "00_worked_example"


@pytest.fixture
def ex():
    return we.example()


def tensors(ex):
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in ex.arrays().items()}


# --------------------------------------------------------------------------- the example
def test_example_is_on_the_unit_circle_with_simple_cosines(ex):
    vs = ex.batch + ex.queue + ex.prototypes
    for v in vs:
        assert math.isclose(math.hypot(*v.xy), 1.0)
    cosines = [we._cos(a, b) for a in vs for b in vs]
    assert all(min(abs(c - t) for t in (1, 0.5, -0.5, -1)) < 1e-12 for c in cosines)
    arr = ex.arrays()
    assert arr["z"].shape == (4, 2) and arr["y"].shape == (4, 3)
    assert arr["queue_z"].shape == (2, 2) and arr["prototypes"].shape == (3, 2)
    # the interesting cases: a two-label document, one sharing one of its labels, a tail label alone
    assert arr["y"].sum(axis=1).tolist() == [2, 1, 1, 1]
    assert arr["y"][0] @ arr["y"][1] == 1
    rescue = ex.label_names.index("rescue")
    assert arr["y"][:, rescue].sum() == 1 and arr["queue_y"][:, rescue].sum() == 1


def test_replace_and_add_queue_key_copy(ex):
    ex2 = ex.add_queue_key("q3", 180, ("rescue",))
    assert len(ex2.queue) == 3 and len(ex.queue) == 2
    assert ex.replace(beta=1.0).beta == 1.0 and ex.beta == 0.1
    assert ex2.arrays()["queue_y"][-1].tolist() == [0.0, 0.0, 1.0]


def test_similarity_and_jaccard_tables(ex):
    sims = we.similarity_table(ex)
    assert sims.shape == (4, 9)
    assert np.isnan(np.diag(sims.iloc[:, :4].to_numpy())).all()
    arr = ex.arrays()
    keys = np.concatenate([arr["z"], arr["queue_z"], arr["prototypes"]])
    expected = arr["z"] @ keys.T / ex.temperature
    np.fill_diagonal(expected[:, :4], np.nan)
    np.testing.assert_allclose(sims.to_numpy(), expected, atol=1e-12)
    jac = we.jaccard_table(ex)
    assert jac.loc["d1", "d2"] == 0.5 and jac.loc["d2", "d3"] == 1.0 and jac.loc["d1", "d4"] == 0.0
    assert jac["N(i)"].tolist() == [1.0, 1.5, 1.5, 0.0]


def test_positives_and_n_ic(ex):
    pos = we.positives_table(ex).set_index(["anchor", "label"])
    assert pos.loc[("d1", "water"), "N(i,c)"] == 2.0      # d2, d3 at 1/2 each, prototype 1
    assert pos.loc[("d1", "food"), "N(i,c)"] == 1.5       # q2 at 1/2, prototype 1
    assert pos.loc[("d2", "water"), "N(i,c)"] == 2.5
    assert pos.loc[("d4", "rescue"), "N(i,c)"] == 2.0     # q1, prototype
    assert pos["lacks_in_batch"].to_dict() == {("d1", "water"): False, ("d1", "food"): True,
                                              ("d2", "water"): False, ("d3", "water"): False,
                                              ("d4", "rescue"): True}
    assert pos.loc[("d1", "food"), "in_queue"] == "q2 (1/2)"


def test_attraction_rows_sum_to_one_and_gradient_rows_to_zero(ex):
    base = we.attraction_table(ex, "base").fillna(0).sum(axis=1)
    assert base.round(12).tolist() == [1.0, 1.0, 1.0, 0.0]
    msc = we.attraction_table(ex, "msc")
    np.testing.assert_allclose(msc.fillna(0).sum(axis=1), 1.0)
    # d1 gives half of its attraction to each of its labels: food via q2 and its prototype
    assert msc.loc["d1", "q2"] + msc.loc["d1", "p_food"] == pytest.approx(0.5)
    for loss in ("base", "msc"):
        g = we.gradient_table(ex, loss)
        rows = g.dropna(how="all")
        np.testing.assert_allclose(rows.fillna(0).sum(axis=1), 0.0, atol=1e-12)
    assert we.gradient_table(ex, "base").loc["d4"].isna().all()
    with pytest.raises(ValueError, match="loss"):
        we.attraction_table(ex, "bqueue")


def test_per_anchor_terms_decompose_as_log_d_minus_pull(ex):
    for table in (we.base_terms(ex), we.msc_terms(ex)):
        used = table["l_i"].notna()
        np.testing.assert_allclose(table.loc[used, "l_i"], table.loc[used, "log D"] - table.loc[used, "pull"],
                                   atol=1e-12)
    labels = we.msc_label_terms(ex)
    np.testing.assert_allclose(labels.groupby("anchor")["t(i,c)"].mean().sort_index(), we.msc_terms(ex)["l_i"])


# --------------------------------------------------------------------------- against the library
@pytest.mark.parametrize("temperature, beta", [(0.5, 0.1), (0.1, 0.1), (0.5, 1.0), (0.2, 0.3)])
def test_totals_equal_the_library(temperature, beta):
    ex = we.example(temperature=temperature, beta=beta)
    t = tensors(ex)
    hand = we.totals(ex)["value"]
    base = losses.base_loss(t["z"], t["y"], temperature=temperature)
    msc = losses.msc_loss(t["z"], t["y"], t["prototypes"], temperature=temperature, beta=beta,
                          queue_z=t["queue_z"], queue_y=t["queue_y"])
    msc_generic = losses.contrastive_loss(t["z"], t["y"], variant="msc", temperature=temperature, beta=beta,
                                          prototypes=t["prototypes"], queue_z=t["queue_z"], queue_y=t["queue_y"])
    base_generic = losses.contrastive_loss(t["z"], t["y"], variant="base", temperature=temperature)
    assert hand["L_Base"] == pytest.approx(float(base), abs=1e-9) == pytest.approx(float(base_generic), abs=1e-9)
    assert hand["L_MSC"] == pytest.approx(float(msc), abs=1e-9) == pytest.approx(float(msc_generic), abs=1e-9)


@pytest.mark.parametrize("variant_ex", ["paper", "beta1", "extra_key"])
def test_per_anchor_terms_equal_the_library_and_a_loop_reference(variant_ex):
    ex = {"paper": we.example(), "beta1": we.example(beta=1.0),
          "extra_key": we.example().add_queue_key("q3", 180, ("rescue",))}[variant_ex]
    t = tensors(ex)
    lib = we.library_terms(ex)
    base, msc = we.base_terms(ex)["l_i"], we.msc_terms(ex)["l_i"]
    np.testing.assert_allclose(base, lib["l_i Base"], atol=1e-9)
    np.testing.assert_allclose(msc, lib["l_i MSC"], atol=1e-9)
    # the library's averaging rule reproduces its totals from the per-anchor terms
    total_base = losses.base_loss(t["z"], t["y"], temperature=ex.temperature)
    total_msc = losses.msc_loss(t["z"], t["y"], t["prototypes"], temperature=ex.temperature, beta=ex.beta,
                                queue_z=t["queue_z"], queue_y=t["queue_y"])
    assert base.dropna().mean() == pytest.approx(float(total_base), abs=1e-9)
    assert msc.dropna().mean() == pytest.approx(float(total_msc), abs=1e-9)
    # each term against the independent loop reference, on the anchor alone with the rest as the queue
    for i, name in enumerate(base.index):
        rest = [j for j in range(len(ex.batch)) if j != i]
        qz, qy = torch.cat([t["z"][rest], t["queue_z"]]), torch.cat([t["y"][rest], t["queue_y"]])
        ref_msc = loop_loss(t["z"][i:i + 1], t["y"][i:i + 1], ex.temperature, "msc", beta=ex.beta,
                            prototypes=t["prototypes"], queue_z=qz, queue_y=qy)
        assert msc[name] == pytest.approx(float(ref_msc), abs=1e-9)
        ref_base = loop_loss(t["z"][i:i + 1], t["y"][i:i + 1], ex.temperature, "bqueue",
                             queue_z=t["z"][rest], queue_y=t["y"][rest])
        if np.isnan(base[name]):
            assert float(ref_base) == 0.0          # no positive: the anchor is left out
        else:
            assert base[name] == pytest.approx(float(ref_base), abs=1e-9)


@pytest.mark.parametrize("loss", ["base", "msc"])
def test_gradient_table_matches_autograd(ex, loss):
    """d l_i / d z_i = (1/tau) (I - z_i z_i^T) sum_k (q_ik - a_ik) z_k, keys held fixed."""
    t = tensors(ex)
    g = we.gradient_table(ex, loss)
    keys = torch.cat([t["z"], t["queue_z"], t["prototypes"]]) if loss == "msc" else t["z"]
    for i, name in enumerate(g.index):
        if g.loc[name].isna().all():
            continue
        rest = [j for j in range(len(ex.batch)) if j != i]
        zi = t["z"][i:i + 1].clone().requires_grad_(True)
        if loss == "msc":
            out = losses.msc_loss(zi, t["y"][i:i + 1], t["prototypes"], temperature=ex.temperature, beta=ex.beta,
                                  queue_z=torch.cat([t["z"][rest], t["queue_z"]]),
                                  queue_y=torch.cat([t["y"][rest], t["queue_y"]]))
        else:
            out = losses.contrastive_loss(zi, t["y"][i:i + 1], variant="bqueue", temperature=ex.temperature,
                                          queue_z=t["z"][rest], queue_y=t["y"][rest])
        (grad,) = torch.autograd.grad(out, zi)
        forces = torch.tensor(g.loc[name].fillna(0.0).to_numpy())
        z = t["z"][i]
        expected = (torch.eye(2, dtype=torch.float64) - torch.outer(z, z)) @ (forces @ keys) / ex.temperature
        torch.testing.assert_close(grad[0], expected, atol=1e-9, rtol=0)


def test_numbers_quoted_in_the_chapter(ex):
    base, msc = we.base_terms(ex), we.msc_terms(ex)
    dens, labels = we.denominator_table(ex), we.msc_label_terms(ex).set_index(["anchor", "label"])
    assert base.loc["d1", "l_i"] == pytest.approx(0.718, abs=5e-4)
    assert base.loc["d1", "log D"] == pytest.approx(1.718, abs=5e-4)
    assert dens.loc["d1", "D_Base"] == pytest.approx(5.572, abs=5e-4)
    assert dens.loc["d4", "sum exp s: batch"] + dens.loc["d4", "sum exp s: queue"] == pytest.approx(6.308, abs=5e-4)
    assert dens.loc["d4", "sum exp s: prototypes"] == pytest.approx(10.243, abs=5e-4)
    assert dens.loc["d4", "D_MSC"] == pytest.approx(10.873, abs=5e-4)
    assert dens.loc["d4", "log D_MSC"] == pytest.approx(2.386, abs=5e-4)
    assert msc.loc["d4", "l_i"] == pytest.approx(0.886, abs=5e-4)
    assert labels.loc[("d1", "water"), "t(i,c)"] == pytest.approx(0.643, abs=5e-4)
    assert labels.loc[("d1", "food"), "t(i,c)"] == pytest.approx(3.143, abs=5e-4)
    grad = we.gradient_table(ex, "msc")
    assert grad.loc["d4", "q1"] == pytest.approx(-0.475, abs=5e-4)
    assert grad.loc["d4", "p_rescue"] == pytest.approx(0.180, abs=5e-4)
    assert math.exp(2) / dens.loc["d4", "D_MSC"] == pytest.approx(0.68, abs=5e-3)
    assert grad.loc["d1", "p_food"] < 0 and grad.loc["d1", "q2"] < 0 and grad.loc["d1", "p_water"] > 0
    assert we.msc_terms(ex.replace(beta=1.0)).loc["d4", "l_i"] == pytest.approx(1.306, abs=5e-4)
    totals = we.totals(ex)
    assert totals.loc["L_Base", "anchors"] == 3 and totals.loc["L_MSC", "anchors"] == 4


# --------------------------------------------------------------------------- the real-batch grid
@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    p = 0.7 / np.arange(1, 10)
    y = (rng.random((40, 9)) < p).astype(np.int64)
    y[~y.any(axis=1), 0] = 1
    z = rng.normal(size=(40, 6))
    return {"z": z[:12], "y": y[:12], "queue_z": z[12:], "queue_y": y[12:],
            "prototypes": rng.normal(size=(9, 6)), "groups": frequency_groups(y.sum(axis=0))}


def _repulsion_loop(z, y, loss, temperature, beta, prototypes=None, queue_z=None, queue_y=None):
    """Who pushes, one anchor and one key at a time."""
    unit = lambda v: np.asarray(v, float) / np.linalg.norm(v)
    keys = [(unit(z[j]), y[j], "batch", j) for j in range(len(z))]
    if loss == "msc":
        keys += [(unit(queue_z[j]), queue_y[j], "queue", j) for j in range(len(queue_z))]
    out = np.zeros(y.shape[1])
    for i in range(len(z)):
        zi = unit(z[i])
        others = [k for k in keys if not (k[2] == "batch" and k[3] == i)]
        if loss == "base" and not any((y[i] * k[1]).sum() > 0 for k in others):
            continue
        if loss == "msc" and y[i].sum() == 0:
            continue
        terms = [((1.0 if loss == "base" else beta) * math.exp(zi @ k[0] / temperature), k[1]) for k in others]
        if loss == "msc":
            terms += [(math.exp(zi @ unit(prototypes[c]) / temperature), np.eye(y.shape[1])[c])
                      for c in range(y.shape[1])]
        denom = sum(e for e, _ in terms)
        for e, labels in terms:
            if labels.sum() > 0:
                out += (e / denom) * labels / labels.sum()
    return out


@pytest.mark.parametrize("loss, temperature, beta", [("base", 0.1, 1.0), ("msc", 0.1, 0.1), ("msc", 0.5, 0.01)])
def test_repulsion_by_label_matches_a_loop(batch, loss, temperature, beta):
    kw = {}
    if loss == "msc":
        kw = dict(prototypes=batch["prototypes"], queue_z=batch["queue_z"], queue_y=batch["queue_y"])
    got = repulsion_by_label(batch["z"], batch["y"], loss, temperature, beta, **kw)
    np.testing.assert_allclose(got, _repulsion_loop(batch["z"], batch["y"], loss, temperature, beta, **kw), rtol=1e-10)
    if loss == "msc":   # every key is labelled: each anchor spreads a total of 1
        assert got.sum() == pytest.approx((batch["y"].sum(axis=1) > 0).sum())
    with pytest.raises(ValueError, match="prototypes"):
        repulsion_by_label(batch["z"], batch["y"], "msc", temperature, beta)


def test_balance_grid(batch):
    betas, taus = (0.1, 1.0), (0.1, 0.5)
    grid = balance_grid(batch["z"], batch["y"], batch["groups"], batch["prototypes"], batch["queue_z"],
                        batch["queue_y"], betas=betas, temperatures=taus)
    assert len(grid) == len(betas) * len(taus) * 2 * 3
    shares = ["attraction_share", "repulsion_share", "gradient_share"]
    sums = grid.groupby(["beta", "temperature", "loss"])[shares].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    # attraction depends on labels only; L_Base does not depend on beta
    assert grid.groupby(["loss", "group"])["attraction_share"].nunique().max() == 1
    base = grid[grid["loss"] == "L_Base"].set_index(["temperature", "group", "beta"]).sort_index()
    for col in ("repulsion_share", "gradient_share"):
        assert base[col].groupby(level=[0, 1]).nunique().max() == 1
    # one setting against direct calls
    row = grid[(grid["beta"] == 0.1) & (grid["temperature"] == 0.5) & (grid["loss"] == "L_MSC")].set_index("group")
    g = batch["groups"]
    grad = analysis.gradient_mass(batch["z"], batch["y"], losses.msc_loss, groups=g,
                                  prototypes=torch.tensor(batch["prototypes"], dtype=torch.float32), temperature=0.5,
                                  beta=0.1, queue_z=torch.tensor(batch["queue_z"], dtype=torch.float32),
                                  queue_y=torch.tensor(batch["queue_y"], dtype=torch.float32))
    rep = _repulsion_loop(batch["z"], batch["y"], "msc", 0.5, 0.1, batch["prototypes"], batch["queue_z"],
                          batch["queue_y"])
    att = analysis.term_counts(batch["y"], "msc", queue_labels=batch["queue_y"], groups=g)
    for name in ("head", "medium", "tail"):
        assert row.loc[name, "gradient_share"] == pytest.approx(grad["grad_share"][g == name].sum(), rel=1e-9)
        assert row.loc[name, "repulsion_share"] == pytest.approx(rep[g == name].sum() / rep.sum(), rel=1e-9)
        assert row.loc[name, "attraction_share"] == pytest.approx(att["attraction_share"][g == name].sum(), rel=1e-9)
    # L_MSC gives the tail a larger share of the attraction than L_Base on a long-tailed batch
    tail = grid[(grid["group"] == "tail") & (grid["beta"] == 0.1) & (grid["temperature"] == 0.1)].set_index("loss")
    assert tail.loc["L_MSC", "attraction_share"] > tail.loc["L_Base", "attraction_share"]


# --------------------------------------------------------------------------- the chapter
@pytest.fixture(scope="module")
def chapter():
    import nbformat

    return nbformat.read(CHAPTER.with_suffix(".ipynb"), as_version=4)


def test_chapter_pair_is_in_sync_and_has_no_outputs(chapter):
    import jupytext
    import nbformat

    nbformat.validate(chapter)
    from_py = jupytext.read(CHAPTER.with_suffix(".py"))
    assert [c.source for c in from_py.cells] == [c.source for c in chapter.cells], \
        "run: jupytext --sync notebooks/00_worked_example.py"
    for cell in chapter.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_chapter_structure(chapter):
    code = [c for c in chapter.cells if c.cell_type == "code"]
    assert 'if "google.colab" in sys.modules:' in code[0].source and "%pip install" in code[0].source
    assert "parameters" in code[1].metadata.get("tags", [])
    assert {"profile", "seed"} <= set(re.findall(r"^(\w+) =", code[1].source, re.M))
    solutions = [c for c in code if {"hide-cell", "hide-input"} & set(c.metadata.get("tags", []))]
    assert len(solutions) >= 2 and all(c.source.startswith("# Solution") for c in solutions)
    text = "\n".join(c.source for c in chapter.cells if c.cell_type == "markdown")
    assert text.count(":class: dropdown") >= 2
    assert "$$" in text and "\\beta" in text
    assert "2404.08720" in text and "{cite:p}`audibert2024abalone`" in text
    assert "## What we saw" in text and "## Exercises" in text
    assert "balance_slider" in "\n".join(c.source for c in code)
    prose = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|!\[.*?\]\(.*?\)", " ", text, flags=re.S)
    assert len(re.findall(r"[A-Za-z][A-Za-z'-]*", prose)) >= 1200
    bib = (ROOT / "book" / "references.bib").read_text()
    for key in re.findall(r"\{cite:p\}`([^`]+)`", text):
        assert f"{{{key}," in bib


def test_diagram_is_readable_svg(chapter):
    text = "\n".join(c.source for c in chapter.cells if c.cell_type == "markdown")
    (path,) = re.findall(r"\]\((\.\./book/images/[^)]+\.svg)\)", text)
    svg = (CHAPTER.parent / path).resolve()
    assert svg == ROOT / "book" / "images" / "abalone_diagram.svg"
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    words = " ".join("".join(t.itertext()) for t in root.iter(f"{ns}text"))
    for label in ("Batch", "Query encoder", "Momentum key encoder", "Queue", "Prototypes", "Loss"):
        assert label in words
    sizes = [float(t.get("font-size", root.get("font-size"))) for t in root.iter(f"{ns}text")]
    assert min(sizes) >= 12
