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
# `abalone train`, and `results/*.csv` sweep tables). It places them next to the paper's
# figures. The paper's numbers come from roberta-base on AAPD and RCV1 with 80 epochs of
# contrastive pre-training, averaged over seeds; this book's default build uses MiniLM on a
# subset of the disaster messages for a few dozen steps on a CPU, so only the order of the
# rows is comparable, not the values.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[book,offline-model] @ git+https://github.com/abalone-book/abalone-book@main"

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
print(f"{len(found)} finished runs: {int(found['source'].str.startswith(str(root)).sum())} in {root}, "
      f"{int(found['source'].str.startswith(str(committed)).sum())} under {committed}")

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
mine = found.groupby(["dataset", "objective"])[["micro_f1", "macro_f1", "hamming"]].mean().unstack("dataset")
mine.columns = [f"{dataset} {metric} (found)" for metric, dataset in mine.columns]
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
for dataset, part in found.groupby("dataset"):
    ranked = part.groupby("objective")["macro_f1"].mean().sort_values(ascending=False)
    ranked = [nb.row_name(o) for o in ranked.index if o in paper_rank.index]
    if ranked:
        lines.append(f"- The same rows found for {dataset}: {', '.join(ranked)}.")
if found.empty:
    lines.append("- No finished run was found: execute chapters 4 to 7 first.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## The comparison of losses as a grid of runs
#
# `abalone sweep GRID.yaml` runs one notebook per cell of a grid (dataset x objective x seed),
# and `abalone sweep GRID.yaml --export results/<name>` writes its finished runs to
# `results/<name>/runs.jsonl` with their parameters, scores, timings, hardware and git
# revision. Every such file under `results/` is tabulated here. The one committed with the
# book comes from `sweeps/cpu_grid.yaml`: MiniLM on disaster and FOLDOC, the nine objectives
# of the paper's Tables 2 and 3, the same 60 optimiser steps of batch 32 for every row, subsets
# of 1,500 / 300 / 600 documents, 64 tokens, temperature 0.1, three seeds, on a 2-core CPU. The
# backbone learns at the paper's 5e-5; the heads faster, for so short a budget: 1e-3 for the
# projection head and prototypes of the contrastive rows (scored by the linear probe and its
# own learning-rate grid), 1e-2 for the classifiers that BCE, focal, asymmetric and fine-tuning
# train from scratch. Its budget is minutes per run where the paper's is GPU-hours, so the
# question it can answer is the paper's ordering of the rows, not its values.
#
# Scores are means ± standard deviations over seeds (F1 in percent, Hamming loss × 10³;
# silhouette and Davies-Bouldin index of the test embeddings with half of the label
# combinations as clusters, as in the paper's Table 4).

# %%
from abalone_core import sweep as sw
from abalone_core.claims import check_claims
from abalone_core.plots import seed_scores

grids = sorted(committed.rglob("runs.jsonl")) if committed.is_dir() else []
rank = {objective: i for i, objective in enumerate(paper.NAMES)}  # the paper's row order
runs = {path.parent.name: sw.records_table(path).sort_values(["dataset", "objective", "seed"],
                                                             key=lambda s: s.map(rank).fillna(99) if s.name == "objective" else s)
        for path in grids}
for name, path in zip(runs, grids):
    part = runs[name]
    display(Markdown(f"**{name}**: {len(part)} runs, {part['minutes'].sum():.0f} minutes of "
                     f"{', '.join(sorted(set(part['hardware'])))}"))
    for dataset in part["dataset"].unique():  # one table per dataset: rows = objectives, columns = metrics
        table = sw.aggregate(path, columns=(), where={"dataset": dataset},
                             metrics=("micro_f1", "macro_f1", "hamming", "silhouette", "davies_bouldin"))
        table = table.loc[nb.row_order(table.index)]
        table.index = [nb.row_name(o) for o in table.index]
        display(Markdown(f"*{dataset}*"))
        display(table)
if not grids:
    display(Markdown(f"No `runs.jsonl` under `{committed}`."))

# %% [markdown]
# Each dot is one seed; the bar is their mean.

# %%
for name, part in runs.items():
    seed_scores(part, metrics=("micro_f1", "macro_f1", "silhouette"),
                names={o: nb.row_name(o) for o in part["objective"].unique()},
                title=f"{name}: test scores over seeds").show()

# %% [markdown]
# ### The paper's claims, checked seed by seed
#
# A claim holds on a seed when the first objective beats the second on that seed ("on par"
# allows one point below); the verdict is `holds` when it does on every seed, `fails` when
# on none, `mixed` otherwise. `difference` is the mean of the per-seed differences. A `caveat` names a row that
# scores below the untrained encoder's linear probe (L_MLM): it has not learned within the
# budget, and a claim against it says little.

# %%
for name, part in runs.items():
    claims = check_claims(part)
    display(Markdown(f"**{name}**"))
    display(claims.style.format(precision=2, na_rep="").hide(axis="index"))
    lines = [f"- {r.dataset}: {r.claim}: **{r.verdict}** ({r.holds_on}/{r.seeds} seeds, "
             f"difference {r.difference:+.2f})" + (f"; {r.caveat}" if r.caveat else "")
             for r in claims.itertuples() if r.seeds]
    display(Markdown("\n".join(lines)))

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
    display(Markdown(f"No sweep table under `{committed}`."))
