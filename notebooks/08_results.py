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
# Chapters 4 to 7 trained small demonstration runs, and each of them glanced at the committed
# grids. This chapter is where the book answers its question: do the ingredients of ABALONE,
# the queue, the prototypes and the per-label balancing with β, help the tail labels of a
# long-tailed multi-label task, and does the balanced loss stay on par with binary cross-entropy
# on the frequent ones? The paper (ECML PKDD 2024 {cite:p}`audibert2024ecml`, first as an arXiv
# preprint {cite:p}`audibert2024abalone`) answers yes on
# AAPD, RCV1 and UK-LEX with roberta-base and 80 epochs. We cannot repeat that budget on a
# laptop, so we ask the same questions of a smaller, fully reported experiment and say exactly how
# far its answers go.
#
# You will learn
#
# - how to gather every finished run of the book and of the committed grids, and why runs of
#   different budgets or subsets are never averaged together;
# - how to read a comparison of losses as an experiment: one table per dataset, the mean over
#   seeds with its 95 % interval, the number of seeds, and whether every row converged;
# - how the paper's claims are judged here, from *paired* per-seed differences and a Student-t
#   interval, and why a verdict is "not testable" when one of the compared rows did not learn;
# - how to look below the averages, label by label, with the number of test documents each label
#   has, so that a tail label with two test documents is not mistaken for evidence;
# - how to compute an interval by hand and how many seeds a difference of a given size needs.
#
# The chapter opens with the answer, generated from the comparison grids, and then shows how it
# was reached. Four kinds of results meet here. The **comparison grids** `results/encoder_depth`
# (disaster and FOLDOC, one trained layer and the whole encoder) and `results/debtags` (about 470
# labels, one trained layer) are the answer: every row scored under the same decision rules, on the
# same text, stopped by the same convergence rule. The **demonstration runs** of chapters 4 to 7 (the `cpu`
# profile: a few dozen optimiser steps on a few hundred messages) show the machinery and are
# never evidence. The **short grid** `results/sweep_cpu` (60 steps, subsets, whole encoder, 3
# seeds) was the book's first comparison: it is kept because it shows what an undertrained
# comparison looks like, and it is labelled so wherever it appears. The **converged grid**
# `results/cpu_converged` came before them: whole splits of two corpora, every trained row given the
# same step budget (chosen so that the rows converge, which each run checks and records), 5 seeds
# for the paper's main rows and 3 for the others. A fourth folder, `results/gpu_grid`, holds one
# seed of the whole encoder fine-tuned on one GPU.

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
seed = 0               # seed of the exercises' resampling

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core.report import paper
from abalone_core.analysis import plots
from abalone_core import sweep as sw
from abalone_core.report import prose
from abalone_core.report.claims import check_claims, t_interval

env = nb.setup()
root = nb.runs_dir(runs_dir, profile)
committed = nb.results_dir(results_dir)
found = nb.collect_results(root, committed)
print(f"{len(found)} finished single runs: {int(found['source'].str.startswith(str(root)).sum())} from this build's "
      f"chapters, {int(found['source'].str.startswith(str(committed)).sum())} committed under results/")

# %% [markdown]
# ## What we found
#
# Does the balance matter, and does it need the whole encoder to move? The comparison grids
# answer it like for like. MiniLM trains its top layer (k = 1) or all six layers (the whole
# encoder); L_Base, L_MSC and BCE train at each depth, with the untrained encoder (L_MLM) and two
# TF-IDF rows as references. Debtags, whose 469 labels make every run several times dearer (most of
# it in the linear probe's 21,105 regressions), trains one layer on the CPU: the paper's ladder
# (L_Base, L_BQueue, L_BQProto, L_MSC), BCE and L_MLM over five seeds, and both TF-IDF rows; its
# whole encoder waits for a GPU (`sweeps/gpu_debtags.yaml`), and its linear probe runs under
# bfloat16 for every row (`results/debtags/README.md`). Every row follows the same rules:
#
# - **one decision rule**: F1 at 0.5 (the released code's rule; the paper states none), at one
#   threshold tuned on validation, and at one threshold *per label* tuned on validation, for every
#   row alike (the linear probe's probabilities, BCE's probabilities, TF-IDF's decision values);
# - **the same text**: the first 64 tokens of MiniLM's tokenizer, for the neural rows and for
#   TF-IDF (cut); the row TF-IDF reads whole documents with its library's own thresholds, as shipped;
# - **one convergence rule**: a run stops once its selection metric has not improved by more than
#   1 % (0.5 F1 points) for three evaluations in a row, 100 steps apart, under a learning rate that
#   stays constant, and one cap of 4000 steps for every row; a run that reaches the cap has not
#   converged, and a claim that needs it is "not testable";
# - **paired seeds**: a verdict needs at least three seeds whose differences vary, and the claims of
#   one dataset and depth are corrected together for multiple comparisons (Holm).
#
# The paragraphs are generated from the committed records by `abalone_core.report.findings.report`, the
# same text as the README's. While the grids are still running they speak of the runs committed so
# far: a claim with fewer than three paired seeds, or with a row not run yet, stays open.

# %% tags=["hide-input"]
from abalone_core.report import findings

depth = findings.grid_records(committed)
display(Markdown(findings.report(depth)))

# %% [markdown]
# What this does and does not tell. The paper trains roberta-base for 80 epochs at 300 tokens on
# AAPD, RCV1 and UK-LEX; these grids train MiniLM, six layers, to convergence on a CPU at 64
# tokens, on corpora of 33, 79 and about 470 labels. A verdict here is about that setting. The
# authors' follow-up study {cite:p}`audibert2024comprehensive` reports that supervised contrastive
# losses struggle on datasets with few labels and on ranking metrics, and do well on macro-F1 when
# there are many labels: disaster and FOLDOC are where ABALONE should help least, debtags where it
# should help most.
#
# ### The comparison, one table per dataset
#
# Each cell is the mean over seeds ± the half-width of its 95 % interval, with the number of seeds
# in brackets; a row whose seeds all agree (TF-IDF is deterministic) shows its value alone. Each
# column names its decision rule: *at 0.5*, a label is predicted when its probability reaches 0.5
# (the released code's rule; for both TF-IDF rows, the library's own decision: a decision value
# above its per-label threshold, cross-validated on the training split); *per-label thresholds*,
# one threshold per label tuned on the validation split, for every row; mAP needs no threshold. `steps` is where the
# runs stopped (mean over seeds), `converged` how many of them the convergence rule let stop
# before the cap.

# %% tags=["hide-input", "full-width"]
if depth.empty:
    display(Markdown("No run of the comparison grids is committed yet."))
for dataset in (depth["dataset"].unique() if not depth.empty else []):
    display(Markdown(f"**{dataset}**"))
    display(findings.depth_table(depth, dataset))
display(Markdown("\n".join(f"- {findings.cost_sentence(depth, g)}" for g in findings.GRIDS) if not depth.empty
                 else ""))

# %% [markdown]
# ### The claims at each depth
#
# The claims of the paper, and the same comparisons under the per-label rule, judged on paired
# seeds: the difference (first row minus second, F1 in points), its 95 % interval, the smallest
# difference those seeds could resolve (the interval's half-width), the Holm-adjusted p-value and
# the verdict.

# %% tags=["hide-input"]
depth_claims = findings.depth_claims(depth) if not depth.empty else pd.DataFrame()
if not depth_claims.empty:
    shown = depth_claims[depth_claims["verdict"] != "not run"]
    for dataset, part in shown.groupby("dataset", sort=False):
        display(Markdown(f"**{dataset}**"))
        display(findings.claims_table(part).style.hide(axis="index"))
    for (dataset, layers), part in shown.groupby(["dataset", "train_layers"], sort=False):
        if part["difference"].notna().any():
            plots.claims_forest(part, title=f"{dataset}, {findings.layers_label(layers)}: paired differences "
                                            "(first row minus second)").show()

# %% [markdown]
# ### Why TF-IDF leads, taken apart
#
# TF-IDF as shipped reads whole documents and picks one threshold per label by cross-validation;
# the neural rows read 64 tokens and are first reported at 0.5. Scoring both under the per-label
# rule, and TF-IDF on the cut text as well, splits its lead into the decision rule, the text
# length and what remains (`abalone_core.report.findings.tfidf_decomposition`):

# %% tags=["hide-input"]
parts = findings.decomposition_sentences(depth) if not depth.empty else []
display(Markdown("\n".join("- " + p for p in parts) if parts
                 else "The TF-IDF and BCE rows of the comparison are not committed yet."))

# %% [markdown]
# ### How many seeds
#
# The seed count comes from a power computation on the paired spread measured so far: the smallest
# number of seeds for which the 95 % half-width of L_MSC − L_Base in macro-F1 is at most one point,
# and never fewer than five, computed at the deepest depth with two paired seeds so far (the whole
# encoder where it has them; debtags trains one layer on the CPU).

# %% tags=["hide-input"]
powers = []
for dataset in (depth["dataset"].unique() if not depth.empty else []):
    try:
        powers.append("- " + findings.power_sentence(findings.deepest_power(depth, dataset)))
    except ValueError as err:  # fewer than two paired seeds so far
        powers.append(f"- not yet: {err}.")
display(Markdown("\n".join(powers) if powers else "No paired whole-encoder seeds are committed yet."))

# %% [markdown]
# ## Every single run found
#
# A single run is a `metrics.json` written by `abalone train` or by a chapter. The table gives
# its test scores (micro-F1 and macro-F1 in percent, macro-F1 of the tail third of the labels),
# with the number of training documents and the budget it had; the table after it says what
# hardware the runs used and how long they trained. Read the `budget` column before anything
# else: a run of 30 steps and a run of 400 steps are different experiments.

# %%
shown = ["objective", "dataset", "train_docs", "budget", "seed", "micro_f1", "macro_f1", "f1_tail"]
runs_found = found[shown].sort_values(["dataset", "train_docs", "objective"]).reset_index(drop=True)
runs_found["objective"] = runs_found["objective"].map(nb.row_name)  # the paper's names


def whole(value) -> str:
    """A count or a budget as written: 3000, not 3000.0; "20 epochs" as it is; empty if unknown."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(int(value)) if isinstance(value, (int, float, np.number)) and float(value).is_integer() else str(value)


for column in ("train_docs", "budget", "seed"):
    runs_found[column] = runs_found[column].map(whole)
runs_found.style.format(precision=2, na_rep="").hide(axis="index")

# %% tags=["hide-input"]
found.assign(place=np.where(found["source"].str.startswith(str(root)), "this build's chapters", "results/")) \
     .groupby(["place", "hardware"], dropna=False) \
     .agg(runs=("objective", "size"), training_minutes=("train_minutes", "sum")).round(1)

# %% [markdown]
# ## The experiments, one column each
#
# The paper's Table 2 and 3 give one number per loss and dataset. Below, the single runs are
# grouped into *experiments*, one per (dataset, training documents, budget), and each experiment
# is a column: a mean is only ever taken inside one column. The paper's macro-F1 on AAPD comes
# first for reference. Its values are not comparable with ours (another backbone, other corpora,
# another budget); only the order of the rows inside one column can be compared with the order
# of the paper's.
#
# Two kinds of committed single runs stay out of this table: the first comparison of
# `results/disaster_cpu` (150 steps on a subset, one seed: undertrained, see the sentence under the
# table) and the learning-rate pilots of the converged grid (`pilot_*`: one row at several head
# learning rates, not one experiment). A row that trains nothing (TF-IDF, L_MLM) has no step
# budget; it joins every column of its dataset and training documents.

# %% tags=["hide-input"]
first_comparison = found["source"].str.contains("disaster_cpu") & found["source"].str.startswith(str(committed))
pilot = found["source"].str.contains("/pilot_")
shown_runs = found[~first_comparison & ~pilot]
trained = shown_runs[shown_runs["budget"].notna()]
trained = trained.assign(experiment=[" / ".join(map(whole, k)) for k in
                                     trained[["dataset", "train_docs", "budget"]].itertuples(index=False)])
no_budget = shown_runs[shown_runs["budget"].isna()]
joined = no_budget.merge(trained[["dataset", "train_docs", "experiment"]].drop_duplicates(), on=["dataset", "train_docs"])
columns = pd.concat([trained, joined], ignore_index=True)
mine = (columns.groupby(["objective", "experiment"])["macro_f1"].mean().unstack("experiment") if len(columns)
        else pd.DataFrame(index=pd.Index([], name="objective")))
reported = nb.paper_table("linear").set_index("objective")[["AAPD macro_f1"]]
reported = pd.concat([reported, nb.paper_table("supervised").set_index("objective")[["AAPD macro_f1"]]])
reported = reported[~reported.index.duplicated()].rename(columns={"AAPD macro_f1": "paper, AAPD"})
side = reported.join(mine, how="outer")
side = side.loc[nb.row_order(side.index)]
side.index = [nb.row_name(o) for o in side.index]
display(side.style.format(precision=2, na_rep=""))
left_out = found[first_comparison]
if len(left_out):
    scores = ", ".join(f"{nb.row_name(o)} {v:.1f}" for o, v in zip(left_out["objective"], left_out["macro_f1"]))
    steps = sorted({int(b) for b in left_out["budget"].dropna()})
    display(Markdown(f"Left out above: the first comparison of `results/disaster_cpu` ({', '.join(map(str, steps))} "
                     f"steps, {int(left_out['train_docs'].max())} training documents, one seed), whose macro-F1 "
                     f"reads {scores}: undertrained, its BCE classifier had not yet learnt to predict most labels."))

# %% [markdown]
# ## The comparison as grids of runs
#
# `abalone sweep GRID.yaml` runs one notebook per cell of a grid (dataset × objective × seed)
# and keeps `results/<name>/runs.jsonl` up to date with every finished run: its parameters,
# scores, whether it converged, timings, hardware and git revision. Each grid is one experiment
# with one budget for every trained row, and each is shown on its own:
#
# * `cpu_converged` (`sweeps/cpu_converged.yaml`): the whole splits of disaster and FOLDOC,
#   MiniLM with its top layer (of 6) trained on the cached output of the frozen bottom
#   (chapter 4), 800 optimiser steps of 32 documents on disaster and 1600 on FOLDOC (the same
#   budget for every trained row of a dataset), 5 seeds for L_MLM, L_Base, L_BQueue,
#   L_BQProto, L_MSC and BCE, 3 for the other rows: 96 runs, about 16 hours of one CPU core
#   (8 with two workers). Its runs appear here as they are committed, so in a grid still
#   running a row with fewer seeds than planned is simply an unfinished row.
# * `gpu_grid` (`sweeps/gpu_grid.yaml`): the whole encoder trained on one GPU, the whole
#   disaster splits, 1,000 steps, one seed: a sanity check of the full-budget code path, not a
#   comparison (one seed gives no interval).
# * `sweep_cpu` (`sweeps/cpu_grid.yaml`): 60 optimiser steps on subsets of 1,500 training
#   documents, 3 seeds. **Undertrained**: the rows that train a classifier from scratch score
#   below the untrained encoder there, so none of its comparisons is a verdict.
#
# Each cell of the tables below is the mean over the finished seeds, ± the half-width of the
# 95 % Student-t interval of that mean, and the number of seeds in brackets. With n seeds the
# half-width is t(0.975, n − 1) · s / √n, where s is the standard deviation over seeds: with 3
# seeds t is 4.30, with 5 seeds 2.78, so three seeds give an interval more than twice as wide as
# five seeds with the same spread. Two rows whose intervals overlap may still differ: the claims
# further down compare rows seed by seed, which removes the variation the two rows share (the
# same data order and initial head for the same seed).

# %% tags=["hide-input"]
GRIDS = ("cpu_converged", "gpu_grid", "sweep_cpu")  # the grids before the comparison grids, each on its own
paths = {name: committed / name / "runs.jsonl" for name in GRIDS if (committed / name / "runs.jsonl").is_file()}
rank = {objective: i for i, objective in enumerate(paper.NAMES)}  # the paper's row order
runs = {name: sw.records_table(path).sort_values(
            ["dataset", "objective", "seed"], key=lambda s: s.map(rank).fillna(99) if s.name == "objective" else s)
        for name, path in paths.items()}
F1 = ("micro_f1", "macro_f1", "micro_f1_tuned", "macro_f1_tuned", "f1_tail")
RANKING = ("p_at_1", "psp_at_3", "map")
GEOMETRY = ("silhouette", "davies_bouldin")  # spreads of a few thousandths: three decimals


def grid_tables(name: str) -> None:
    """Per dataset: F1 table and ranking/geometry table, mean ± 95 % half-width (seeds)."""
    part, path = runs[name], paths[name]
    converged = part["converged"].dropna() if "converged" in part else pd.Series(dtype=bool)
    note = (f"; {int(converged.astype(bool).sum())} of {len(converged)} trained runs converged"
            if len(converged) else "")
    display(Markdown(f"**{name}**: {len(part)} runs, {part['minutes'].sum():.0f} minutes of "
                     f"{', '.join(sorted(set(part['hardware'])))}{note}"))
    for dataset in part["dataset"].unique():
        for title, wanted, digits in (("F1, percent", F1, 2), ("ranking, percent", RANKING, 2),
                                      ("geometry of the test embeddings", GEOMETRY, 3)):
            metrics = tuple(m for m in wanted if m in part and part.loc[part["dataset"] == dataset, m].notna().any())
            if not metrics:
                continue
            table = sw.aggregate(path, columns=(), where={"dataset": dataset}, metrics=metrics, stat="interval",
                                 digits=digits)
            table = table.loc[nb.row_order(table.index)]
            table.index = [nb.row_name(o) for o in table.index]
            display(Markdown(f"*{dataset}, {title}*"))
            display(table)


if "cpu_converged" in runs:
    display(Markdown(f"In the converged grid {prose.converged_runs(runs['cpu_converged']['converged'].tolist())}; "
                     "the convergence table below says which rows did not."))
    grid_tables("cpu_converged")
else:
    display(Markdown("No converged grid is committed under results/ yet."))
if "gpu_grid" in runs:
    n_seeds = runs["gpu_grid"]["seed"].nunique()
    display(Markdown(f"**The GPU grid**, {n_seeds} seed{'s' if n_seeds != 1 else ''}"
                     + (": one seed gives no interval, so these are single runs, not means." if n_seeds == 1 else ".")))
    grid_tables("gpu_grid")

# %% [markdown]
# The first table of each dataset reads F1 at the fixed threshold 0.5 (`micro_f1`, `macro_f1`)
# and at one global threshold chosen on the validation split (`_tuned`, chapter 5); `f1_tail` is
# the macro-F1 of the rarest third of the labels. The next two tables give precision at 1,
# propensity-scored precision at 3 (which weighs a correct rare label more than a correct
# frequent one, {cite:t}`jain2016extreme`), mean average precision over labels, and the two
# clustering scores of chapter 7 (silhouette: higher is better; Davies–Bouldin: lower is
# better). The contrastive rows are scored through the linear probe of chapter 5; the rows that
# train a classifier are scored with their own classifier; `TF-IDF` uses no network at all.

# %% [markdown]
# ### Convergence
#
# A row that has not converged is not a fair competitor: whatever it scores, more steps might
# change it. Every trained run of the grids records whether its selection metric (validation
# loss for contrastive rows, on in-batch keys since chapter 4 explains why; validation micro-F1
# for classifiers) still improved in the last quarter of its budget (`abalone_core.training.convergence`). The table counts, for each row, the runs
# that converged, that did not, and the runs that have no such record (L_MLM and TF-IDF train
# nothing that could converge). The last column says why a row did not converge: the largest
# last-quarter gain of its runs divided by the rule's tolerance (1 % of the validation loss, or
# 0.5 points of validation micro-F1). Below 1 the run converged; 3 means it was still improving at
# three times the tolerance when its budget ran out; a negative value means its best validation
# score came before the last quarter (the checkpoint kept is that best one).

# %% tags=["hide-input"]
if "cpu_converged" in runs:
    part = runs["cpu_converged"]
    status = part["converged"].map({True: "converged", False: "not converged"}).fillna("no training")
    counts = part.assign(status=status).groupby(["dataset", "objective", "status"]).size().unstack(fill_value=0)
    order = {o: i for i, o in enumerate(nb.row_order(part["objective"].unique()))}  # the paper's row order
    counts = counts.sort_index(key=lambda index: index.map(order) if index.name == "objective" else index)
    counts = counts.astype(int)
    gain = part.groupby(["dataset", "objective"])["gain_vs_tolerance"].max()
    counts["largest gain / tolerance"] = [f"{g:.2f}" if pd.notna(g) else "" for g in gain.reindex(counts.index)]
    counts.index = pd.MultiIndex.from_tuples([(d, nb.row_name(o)) for d, o in counts.index], names=["dataset", "row"])
    display(counts)

# %% [markdown]
# ### Each seed
#
# The tables hide how the seeds spread. Each dot below is one seed and each bar the mean: when
# the dots of two rows interleave, the difference of their means is within seed noise, whatever
# its sign.

# %%
for name, part in runs.items():
    names = {o: nb.row_name(o) for o in part["objective"].unique()}
    plots.seed_scores(part, metrics=("micro_f1", "macro_f1"), names=names,
                      title=f"{name}: test F1 over seeds").show()

# %% [markdown]
# ## The paper's claims, judged on paired seeds
#
# Each claim compares two rows on one metric: L_MSC above L_Base in macro-F1; the queue
# (L_BQueue above L_Base), the prototypes (L_BQProto above L_BQueue) and the per-label balancing
# (L_MSC above L_BQProto) each adding macro-F1; L_MSC on par with BCE in micro-F1 (at most one
# point below); L_MSC with a better silhouette and Davies–Bouldin index than L_Base. For every seed
# where both rows ran, the difference (first row minus second) is taken, and the verdict comes
# from the 95 % t-interval of the mean difference over those seeds:
#
# - `holds` when the whole interval is above 0 (above −1 point for "on par") and the paired
#   t-test still rejects that bound after Holm's correction over the claims of the dataset;
# - `fails` when the whole interval is below, under the same correction;
# - `inconclusive` otherwise: the interval contains the bound, or excludes it only before the
#   correction, or fewer than three seeds are paired, or their differences do not vary (equal
#   differences give an interval of width 0 that says nothing about the next seed);
# - `not testable` when one of the two rows did not converge, has no record of converging (the
#   short grid predates that record), or scores below the untrained encoder (L_MLM): a
#   comparison with a row that may not have learnt says nothing about the losses.
#
# Pairing matters. Seed s fixes the order of the training batches and the initial projection
# head for every row, so a seed that is lucky for L_Base tends to be lucky for L_MSC too; the
# difference of the two cancels that shared luck, and its spread is usually smaller than the
# spread of either row. The interval of a paired difference is therefore the right yardstick,
# not the overlap of the two rows' own intervals.

# %%
verdicts = {}
for name, part in runs.items():
    claims = check_claims(part, require_converged=True)
    verdicts[name] = claims
    display(Markdown(f"**{name}**"))
    for dataset, per_dataset in claims.groupby("dataset", sort=False):
        display(Markdown(f"*{dataset}*"))
        display(findings.claims_table(per_dataset).style.hide(axis="index"))
        if per_dataset["difference"].notna().any():
            plots.claims_forest(per_dataset, title=f"{name}, {dataset}: paired differences (first row minus "
                                                   "second) with their 95 % interval").show()

# %% tags=["hide-input"]
for name, claims in verdicts.items():
    lines = []
    for r in claims.itertuples():
        if not r.seeds:
            continue
        interval = (f", 95 % interval [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                    if pd.notna(r.ci_low) and pd.notna(r.ci_high) else "")
        lines.append(f"- {r.dataset}: {r.claim}: **{r.verdict}** (difference {r.difference:+.2f} over "
                     f"{r.seeds} seed{'s' if r.seeds != 1 else ''}{interval})" + (f"; {r.caveat}" if r.caveat else ""))
    display(Markdown(f"**{name}**\n\n" + ("\n".join(lines) if lines else "No claim has both of its rows here.")))

# %% [markdown]
# A verdict of the converged grid is about that experiment: MiniLM with one trainable layer, 800 steps (1600 on FOLDOC), 64 tokens,
# these two corpora. "Fails" here does not refute the paper, whose encoder, budget and corpora
# differ; it says that at this scale the ingredient does not add what the paper measured at its
# scale. "Inconclusive" says that the seeds do not separate the rows: more seeds would narrow
# the interval (exercise 2 estimates how many), and until then the honest summary is that the
# difference, if any, is smaller than the seed noise.

# %% [markdown]
# ## Below the averages: each label
#
# Macro-F1 is an average over labels, and a tail label's F1 rests on its few test documents.
# The table lists, for each label of the converged grid's datasets, its frequency group, its
# number of training and test documents, and the mean test F1 over seeds of three rows: the
# baseline contrastive loss, ABALONE's and BCE. A tail label with no test document scores 0 for
# every row (F1 is undefined there, and scikit-learn counts it as 0): it lowers every row's
# macro-F1 equally and says nothing about the losses. One with two or three test documents moves
# by 30 points or more when one document flips.

# %% tags=["hide-input"]
from abalone_core.training.config import Config
from abalone_core.evaluation.per_label import grid_records, mean_over_seeds, per_label_frame, support
from abalone_core.data.run_data import load_run_dataset

per_label = {}
if "cpu_converged" in runs:
    for dataset in runs["cpu_converged"]["dataset"].unique():
        rows = {nb.row_name(o): mean_over_seeds(grid_records(paths["cpu_converged"], dataset, objectives=(o,)))
                for o in ("base", "msc", "bce")}
        rows = {k: v for k, v in rows.items() if v is not None}
        if not rows:
            continue
        try:
            counts = support(load_run_dataset(Config(dataset=dataset)))
        except Exception as err:  # e.g. the corpus is not installed on this machine
            display(Markdown(f"*{dataset}*: label counts unavailable here ({str(err).splitlines()[0]})."))
            continue
        per_label[dataset] = per_label_frame(rows, counts)
        display(Markdown(f"*{dataset}*: test F1 per label, mean over the finished seeds"))
        display(per_label[dataset].style.format(precision=1, na_rep=""))

# %% tags=["hide-input"]
lines = []
for dataset, table in per_label.items():
    empty = table[table["test docs"] == 0]
    few = table[(table["test docs"] > 0) & (table["test docs"] < 5)]
    lines.append(f"- {dataset}: {len(table)} labels; {len(empty)} {'has' if len(empty) == 1 else 'have'} no test "
                 "document" + (f" ({', '.join(empty.index[:6])}{', ...' if len(empty) > 6 else ''})" if len(empty) else "")
                 + f", and {len(few)} {'has' if len(few) == 1 else 'have'} fewer than five.")
if lines:
    display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: an interval by hand
# Take the first claim (L_MSC above L_Base in macro-F1) on the first dataset of the converged
# grid. From `runs["cpu_converged"]`, pair the two rows by seed, compute the mean difference,
# its standard deviation and the 95 % Student-t interval with `scipy.stats.t`, and check that you
# find the numbers of the claims table.
# :::

# %% tags=["hide-cell"]
# Solution 1
from scipy import stats


def paired(part, dataset, better, worse, metric="macro_f1"):
    rows = part[part["dataset"] == dataset].pivot_table(index="seed", columns="objective", values=metric)
    if better not in rows or worse not in rows:
        return None
    return (rows[better] - rows[worse]).dropna()


part = runs.get("cpu_converged")
d = None if part is None else paired(part, part["dataset"].iloc[0], "msc", "base")
if d is None or len(d) < 2:
    print("Not enough paired seeds of L_MSC and L_Base in the converged grid yet.")
else:
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    print(f"{len(d)} seeds: mean {d.mean():+.2f}, sd {d.std(ddof=1):.2f}, "
          f"interval [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]; the library: "
          f"[{t_interval(d)[0]:+.2f}, {t_interval(d)[1]:+.2f}]")

# %% [markdown]
# :::{admonition} Exercise 2: how many seeds would settle it?
# Suppose the true mean difference between L_MSC and L_Base equals the one measured, and the
# spread of the paired differences is the one measured. For n = 2 to 30 seeds, compute the
# half-width of the 95 % interval, t(0.975, n − 1) · s / √n, and find the smallest n at which it
# is smaller than the absolute mean difference, that is, the number of seeds at which the
# interval would most likely exclude 0. What does it say about a difference of 0.3 points?
# :::

# %% tags=["hide-cell"]
# Solution 2
def seeds_needed(mean, sd, most=30):
    for n in range(2, most + 1):
        if stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) < abs(mean):
            return n
    return None


if d is None or len(d) < 2:
    mean, sd = 0.3, 1.0  # illustrative values until the grid has two paired seeds
    print("Illustrative values (no paired seeds yet): mean 0.3, sd 1.0")
else:
    mean, sd = d.mean(), d.std(ddof=1)
n = seeds_needed(mean, sd)
print(f"mean difference {mean:+.2f}, sd {sd:.2f}: "
      + (f"{n} seeds" if n else "more than 30 seeds") + " for the interval to exclude 0")
print(f"a 0.3-point difference with the same sd needs {seeds_needed(0.3, sd) or 'more than 30'} seeds")

# %% [markdown]
# :::{admonition} Exercise 3: does the metric change the order?
# Macro-F1 at 0.5 rewards a row whose probabilities are well calibrated around 0.5; PSP@3 and mAP
# only look at the ranking of the labels. On each dataset of the converged grid, rank the rows by
# mean macro-F1, by mean tuned macro-F1 and by mean PSP@3. Which rows move, and what does that
# say about the threshold?
# :::

# %% tags=["hide-cell"]
# Solution 3
if part is None or part.empty:
    print("No converged grid yet.")
else:
    for dataset, rows in part.groupby("dataset"):
        means = rows.groupby("objective")[["macro_f1", "macro_f1_tuned", "psp_at_3"]].mean()
        order = {m: [nb.row_name(o) for o in means[m].dropna().sort_values(ascending=False).index] for m in means}
        display(Markdown(f"*{dataset}*\n\n" + "\n".join(f"- by {m}: {', '.join(o)}" for m, o in order.items())))

# %% [markdown]
# ## Sweep tables
#
# CSV tables committed under `results/` at its top level (for example the aggregated output of a
# grid of full-scale runs on a cluster) are shown as they are.

# %%
tables = sorted(committed.glob("*.csv")) if committed.is_dir() else []
for path in tables:
    display(Markdown(f"**{path.name}**"))
    display(pd.read_csv(path))
if not tables:
    display(Markdown("No sweep table at the top of results/."))

# %% [markdown]
# ## What we saw
#
# The answer, claim by claim, across the datasets and depths of the comparison grids (generated
# from the same verdicts as the paragraphs at the top of the chapter, `findings.claim_summary`):

# %% tags=["hide-input"]
display(Markdown(findings.claim_summary(depth_claims) if not depth_claims.empty
                 else "No claim of the comparison grids has been judged yet."))

# %% [markdown]
# How far that answer goes:
#
# - It is the answer for MiniLM at 64 tokens, trained to convergence on a CPU, on corpora of 33,
#   79 and about 470 labels, not for roberta-base at 300 tokens and 80 epochs on AAPD, RCV1 and
#   UK-LEX. Where it disagrees with the paper, that difference of scale is the first suspect, and
#   the GPU grid files (`sweeps/gpu_depth.yaml`, `sweeps/gpu_debtags.yaml`) are the place to test it.
# - "Open" is not "no effect": beside each open verdict, the paragraphs at the top give the
#   smallest difference its seeds could have resolved; a smaller true difference needs more seeds.
# - Below the averages, tail labels rest on a handful of test documents, some on none: a
#   macro-F1 difference of a point can come from one or two documents of one label, which is
#   why the seeds, the pairing and the per-label table matter more than any single number.
# - The book keeps its kinds of results apart: demonstration runs, the undertrained short grid,
#   the earlier converged grid (one budget for every row), and the comparison grids; a mean is
#   only ever taken over the seeds of one experiment.
# - To extend the evidence, add seeds or rows to `sweeps/encoder_depth.yaml` (or
#   `sweeps/debtags.yaml`) and run `abalone sweep sweeps/encoder_depth.yaml --workers 2`: finished
#   runs are skipped, and the new ones appear in this chapter, and in the README after
#   `python scripts/write_findings.py`, at the next build.
