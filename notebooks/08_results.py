# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Results side by side
#
# This chapter gathers every finished run it can find: the run directories of the chapters
# (this build's profile) and the result files committed under `results/` at the top of the
# repository (any JSON record with `objective` and `test` keys, as written by
# `abalone train`, the `runs.jsonl` of experiment grids, and `results/*.csv` sweep tables).
# It places them next to the paper's figures. The paper's numbers come from roberta-base on
# AAPD and RCV1 with 80 epochs of contrastive pre-training, averaged over seeds; the runs here
# use MiniLM on the disaster messages and FOLDOC with budgets from a few dozen steps to a
# converged few hundred, so only the order of the rows is comparable, not the values.
#
# One rule holds throughout: runs are averaged only with runs of the same dataset, training
# documents and budget. A row trained for 60 steps and the same row trained for 400 are two
# different experiments, shown side by side, never mixed into one mean.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
profile = "cpu"
runs_dir = None        # None: runs/book-<profile> in the checkout
results_dir = None     # None: results/ in the checkout (committed records and sweep tables)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core import paper

env = nb.setup()
root = nb.runs_dir(runs_dir, profile)
committed = nb.results_dir(results_dir)
found = nb.collect_results(root, committed)
print(f"{len(found)} finished runs: {int(found['source'].str.startswith(str(root)).sum())} from this build's "
      f"chapters, {int(found['source'].str.startswith(str(committed)).sum())} committed under results/")

# %% [markdown]
# ## Every run found
#
# Test scores (micro-F1 and macro-F1 in percent, Hamming loss × 10³, head and tail macro-F1),
# with the budget (optimiser steps, or epochs) and the hardware each run used.

# %%
shown = ["objective", "dataset", "backbone", "micro_f1", "macro_f1", "hamming", "f1_head", "f1_tail", "train_docs",
         "steps", "budget", "seed", "train_minutes", "hardware"]
found[shown].sort_values(["dataset", "backbone", "objective"]).reset_index(drop=True)

# %% [markdown]
# ## Against the paper

# %%
reported = pd.concat([nb.paper_table("linear").set_index("objective"),
                      nb.paper_table("supervised").set_index("objective")[["AAPD micro_f1", "AAPD macro_f1"]]])
reported = reported[~reported.index.duplicated()]
# One column group per (dataset, training documents, budget): runs of other budgets or subsets
# are separate experiments and are never averaged together.
keys = found[["dataset", "train_docs", "budget"]].astype(str).agg(" / ".join, axis=1)
mine = found.assign(experiment=keys).groupby(["experiment", "objective"])[["micro_f1", "macro_f1"]].mean()
mine = mine.unstack("experiment")
mine.columns = [f"{experiment} {metric}" for metric, experiment in mine.columns]
side = reported.drop(columns="loss").join(mine, how="outer")
side = side.loc[nb.row_order(side.index)]  # the paper's row order, other rows last
side.index = [nb.row_name(o) for o in side.index]
side

# %%
nb.paper_table("clustering").set_index("loss").drop(columns="objective")

# %%
paper_rank = nb.paper_table("linear").set_index("objective")["AAPD macro_f1"].sort_values(ascending=False)
lines = [f"- Cost: the paper reports {paper.COST}; the runs found here took "
         f"{found['train_minutes'].sum():.1f} training minutes in total.",
         f"- Contrastive rows by macro-F1 in the paper (AAPD): "
         f"{', '.join(nb.row_name(o) for o in paper_rank.index)}."]
for experiment, part in found.assign(experiment=keys).groupby("experiment"):
    ranked = part.groupby("objective")["macro_f1"].mean().sort_values(ascending=False)
    ranked = [nb.row_name(o) for o in ranked.index if o in paper_rank.index]
    if len(ranked) > 1:
        lines.append(f"- The same rows found for {experiment} (dataset / training documents / budget): "
                     f"{', '.join(ranked)}.")
if found.empty:
    lines.append("- No finished run was found: execute chapters 4 to 7 first.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## The comparison of losses as grids of runs
#
# `abalone sweep GRID.yaml` runs one notebook per cell of a grid (dataset x objective x seed)
# and keeps `results/<name>/runs.jsonl` up to date with every finished run: its parameters,
# scores, convergence, timings, hardware and git revision. Each grid is one experiment with one
# budget for every trained row; each is shown on its own:
#
# * `sweep_cpu` (`sweeps/cpu_grid.yaml`): 60 optimiser steps on subsets of 1,500 training
#   documents, the whole encoder trained, 3 seeds. **Undertrained**: the rows that train a
#   classifier from scratch score below the untrained encoder there.
# * `cpu_converged` (`sweeps/cpu_converged.yaml`): the whole splits, the top 2 of MiniLM's 6
#   layers trained on the cached output of the frozen bottom, 400 steps, 5 seeds for the
#   paper's main rows and 3 for the others, every trained run recording whether it converged.
#   The grid takes hours on a 2-core CPU; its runs appear here as they finish.
# * `gpu_grid` (`sweeps/gpu_grid.yaml`): the whole encoder trained on one GPU, the whole
#   disaster splits, 1,000 steps, one seed.
#
# Scores are means ± standard deviations over seeds: F1 in percent at the 0.5 threshold and at
# one global threshold tuned on validation (`_tuned`), precision at 1 (`p_at_1`),
# propensity-scored precision at 3 (`psp_at_3`, which rewards rare labels), mean average
# precision (`map`), and the silhouette of the test embeddings with half of the label
# combinations as clusters (the paper's Table 4).

# %%
from abalone_core import sweep as sw
from abalone_core.claims import check_claims
from abalone_core.plots import seed_scores

grids = sorted(committed.rglob("runs.jsonl")) if committed.is_dir() else []
rank = {objective: i for i, objective in enumerate(paper.NAMES)}  # the paper's row order
runs = {path.parent.name: sw.records_table(path).sort_values(["dataset", "objective", "seed"],
                                                             key=lambda s: s.map(rank).fillna(99) if s.name == "objective" else s)
        for path in grids}
wanted = ("micro_f1", "macro_f1", "macro_f1_tuned", "p_at_1", "psp_at_3", "map", "silhouette")
for name, path in zip(runs, grids):
    part = runs[name]
    converged = part["converged"].dropna() if "converged" in part else pd.Series(dtype=bool)
    note = (f"; {int(converged.astype(bool).sum())} of {len(converged)} trained runs converged" if len(converged)
            else "")
    display(Markdown(f"**{name}**: {len(part)} runs, {part['minutes'].sum():.0f} minutes of "
                     f"{', '.join(sorted(set(part['hardware'])))}{note}"))
    metrics = tuple(m for m in wanted if m in part and part[m].notna().any())
    for dataset in part["dataset"].unique():  # one table per dataset: rows = objectives, columns = metrics
        table = sw.aggregate(path, columns=(), where={"dataset": dataset}, metrics=metrics)
        table = table.loc[nb.row_order(table.index)]
        table.index = [nb.row_name(o) for o in table.index]
        display(Markdown(f"*{dataset}*"))
        display(table)
if not grids:
    display(Markdown("No `runs.jsonl` under results/."))

# %% [markdown]
# Each dot is one seed; the bar is their mean.

# %%
for name, part in runs.items():
    seed_scores(part, metrics=("micro_f1", "macro_f1", "silhouette"),
                names={o: nb.row_name(o) for o in part["objective"].unique()},
                title=f"{name}: test scores over seeds").show()

# %% [markdown]
# ### The paper's claims, judged on paired seeds
#
# Each claim compares two rows on one metric. For every seed where both ran, the difference
# (first row minus second) is taken; the verdict comes from the 95 % t-interval of the mean
# difference over those seeds: `holds` when the whole interval is above 0 (above -1 point for
# "on par"), `fails` when it is below, `inconclusive` when it contains 0 or fewer than two seeds
# are paired, and `not testable` when one of the two rows did not converge or scores below the
# untrained encoder (L_MLM): a comparison with a row that has not learnt says nothing about the
# losses. `caveat` says why.

# %%
for name, part in runs.items():
    claims = check_claims(part)
    display(Markdown(f"**{name}**"))
    shown_claims = claims[["dataset", "claim", "difference", "ci_low", "ci_high", "seeds", "verdict", "caveat"]]
    display(shown_claims.style.format(precision=2, na_rep="").hide(axis="index"))
    lines = []
    for r in claims.itertuples():
        if not r.seeds:
            continue
        interval = (f", 95 % interval [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                    if pd.notna(r.ci_low) and pd.notna(r.ci_high) else "")
        lines.append(f"- {r.dataset}: {r.claim}: **{r.verdict}** (difference {r.difference:+.2f} over "
                     f"{r.seeds} seeds{interval})" + (f"; {r.caveat}" if r.caveat else ""))
    display(Markdown("\n".join(lines) if lines else "No claim has both of its rows here."))

# %% [markdown]
# ## Sweep tables
#
# CSV tables committed under `results/` (for example the aggregated output of a grid of
# full-scale runs) are shown as they are.

# %%
tables = sorted(committed.glob("*.csv")) if committed.is_dir() else []
for path in tables:
    display(Markdown(f"**{path.name}**"))
    display(pd.read_csv(path))
if not tables:
    display(Markdown("No sweep table under results/."))
