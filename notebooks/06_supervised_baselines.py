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
# # Supervised baselines
#
# A contrastive encoder is only worth its cost if it beats the simpler things a practitioner
# would try first. The paper {cite:p}`audibert2024abalone` compares L_MSC with three losses
# trained end to end on the labels (its Table 3): binary cross-entropy, the focal loss
# {cite:p}`lin2017focal` and the asymmetric loss {cite:p}`ridnik2021asl`. This book adds three
# rows the paper does not have. The **distribution-balanced loss** (DB) was built for exactly
# our problem, long-tailed multi-label text {cite:p}`wu2020distribution,huang2021balancing`.
# **TF-IDF with one linear classifier per label** is the baseline every practitioner should run
# first, because it trains in seconds on a CPU and is often hard to beat
# {cite:p}`lin2023linear`. **MulSupCon** {cite:p}`zhang2024mulsupcon` is another multi-label
# supervised contrastive loss, published in the same year as ABALONE, which shows what the
# prototypes and the balance of L_MSC add to a contrastive loss that has neither.
#
# You will learn
#
# - what BCE, focal, asymmetric and distribution-balanced losses do to the gradient of a rare
#   positive and of an easy negative, derived by hand and measured with autograd;
# - why a classifier layer trained from scratch needs a much larger learning rate than the
#   pre-trained encoder under it, and why the rows that train a classifier choose that learning
#   rate on validation from a small grid;
# - why a checkpoint is selected on validation micro-F1, and what changes between the 0.5
#   threshold and a threshold tuned on validation;
# - how TF-IDF with linear classifiers and MulSupCon work, and where they sit beside L_MSC;
# - how to read the converged comparison of the losses on two datasets, seed by seed, with the
#   per-label test support that says which tail scores mean something.
#
# The chapter first trains a few rows live with the `cpu` profile. Those runs are a
# **demonstration**: a few dozen optimiser steps on a subset of 600 training documents, enough to
# watch each loss take its first steps, not to rank the losses. The evidence comes from the
# committed grid `results/cpu_converged`, where every row is trained on the whole splits for a
# budget meant to let it converge, with several seeds, and each run records whether it did.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
profile = "cpu"        # "cpu": minutes on a laptop; "gpu": paper-like budget (abalone_core.notebook.PROFILES)
dataset = None         # None: the profile's dataset ("disaster")
backbone = None        # None: the profile's backbone ("minilm" on cpu, "roberta-base" on gpu)
max_steps = None       # None: the profile's budget
seed = 0
device = "auto"        # "auto", "cpu", "cuda", "cuda:1", ...
runs_dir = None        # None: runs/book-<profile> in the checkout (shared by chapters 4 to 8)
results_dir = None     # None: results/ in the checkout (the committed grids)
grid = "cpu_converged"  # the committed grid whose runs are the evidence of this chapter

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core.method import objectives

env = nb.setup()  # first: quiet progress bars and warnings for the imports below

from abalone_core.method import losses
from abalone_core.analysis import plots
from abalone_core import sweep as sw
from abalone_core.training.config import Config
from abalone_core.evaluation.metrics import frequency_groups
from abalone_core.evaluation.per_label import grid_records, mean_over_seeds, per_label_frame, support
from abalone_core.data.run_data import load_run_dataset

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
ROWS = ["bce", "focal", "asymmetric", "db", "tfidf-linear", "mulsupcon", "msc"]  # the rows compared here

# %% [markdown]
# ## Four ways to weigh a (document, label) pair
#
# All four supervised losses see the same thing: a logit $z_{ic}$ per document $i$ and label $c$,
# its probability $p_{ic} = \sigma(z_{ic})$, and the target $y_{ic} \in \{0, 1\}$. They are all
# sums over the $N \times L$ (document, label) pairs, so the question that separates them is how
# much each pair is allowed to push on the network. On long-tailed multi-label data the pairs are
# very unequal. In a batch of 32 disaster messages with 33 labels there are about a thousand pairs;
# fewer than one in ten is positive, most of those on head labels, and a tail label is positive in one batch
# out of several. The overwhelming majority of pairs are **easy negatives**: a label that the
# document obviously does not carry and that the classifier already scores low.
#
# **Binary cross-entropy** treats every pair alike. Its gradient with respect to the logit is
# the simplest possible,
#
# $$ \frac{\partial \ell_{\text{BCE}}}{\partial z} = p - y, $$
#
# so a positive at probability $p$ is pushed up with strength $1 - p$ and a negative is pushed
# down with strength $p$. An easy negative at $p = 0.05$ gets a twentieth of a full push, but
# there are a thousand of them for every rare positive, and summed they dominate the update:
# the classifier learns first and mostly to say "no".
#
# The **focal loss** multiplies each term by $(1 - p_t)^\gamma$, where $p_t$ is the probability
# of the correct answer ($p$ for a positive, $1 - p$ for a negative). With $\gamma = 2$ an easy
# negative at $p = 0.05$ has its loss scaled by $0.05^2 = 0.0025$, and its gradient shrinks by
# about as much. A hard pair, whatever its sign, keeps most of its gradient. Focal loss was made
# for object detection, where the background boxes play the role of our easy negatives. It is
# symmetric, though: it also silences positives that are already well predicted, and it does not
# know which labels are rare.
#
# The **asymmetric loss** (ASL) treats the two signs differently. Positives keep the plain
# cross-entropy ($\gamma_+ = 0$); negatives get a stronger focusing ($\gamma_- > \gamma_+$) and,
# above all, a **probability margin** $m$: a negative is scored on $p_m = \max(p - m, 0)$, so
# every negative below $m$ contributes exactly zero loss and zero gradient. This hard threshold
# also discards negatives that are really mislabelled positives, a frequent defect of multi-label
# annotation, which is the second motivation of its authors. The values this book uses, the
# paper's, come from the configuration:

# %% tags=["hide-input"]
from abalone_core.report import prose

settings = Config()
display(Markdown(prose.asl_sentence(settings.asl_gamma_pos, settings.asl_gamma_neg, settings.asl_margin) + "."))

# %% [markdown]
#
# The **distribution-balanced loss** (DB) adds two ideas. The first is a **re-balanced weight**
# per pair: with $n_c$ the training documents of label $c$,
#
# $$ r_{ic} = \frac{1/n_c}{\sum_{c' \in y_i} 1/n_{c'}}, \qquad
#    \hat r_{ic} = \alpha + \sigma\big(\beta\,(r_{ic} - \mu)\big), $$
#
# which is close to 1 for the rarest label of a document and close to $\alpha = 0.1$ for a head
# label that travels with a rare one. A document carrying "aid_related" and a rare label thus
# spends its weight on the rare label. The second idea is the **negative-tolerant
# regularisation**: the negative term becomes $\frac{1}{\lambda}\log(1 + e^{\lambda x})$ with
# $\lambda = 2$, whose gradient $\sigma(\lambda x)$ decays twice as fast as BCE's $\sigma(x)$ once
# a negative's logit is below zero, and the logit is shifted by a fixed fraction $\kappa$ of the
# label's prior log-odds. Negatives that are already on the right side are tolerated, instead of
# being pushed ever lower, which is what makes a classifier over-suppress the tail. The
# implementation (`abalone_core.method.losses.db_loss`) follows the configuration of Huang et al.,
# focal term included.
#
# The derivatives are easy to get wrong by hand, so the cell below asks autograd. It puts one
# pair at every probability from 0.01 to 0.99, once as a positive and once as a negative, and
# records the size of the gradient on its logit. For DB the watched label and the document's
# other label both have 50 of 1,000 training documents, so the re-balanced weight is the same for
# both signs and the curves show the regularisation and the focal term.

# %%
p = np.linspace(0.01, 0.99, 99)
z = torch.tensor(np.log(p / (1 - p)))                       # the logits of these probabilities
counts, n_train = torch.tensor([50.0, 50.0]), 1000          # DB needs the training label counts
supervised = {"BCE": losses.bce_loss, "Focal": losses.focal_loss, "ASL": losses.asymmetric_loss,
              "DB": lambda x, y: losses.db_loss(x, y, class_counts=counts, n_train=n_train)}


def gradient_on_label(loss_fn, target):
    """|dL/dz| of label 0 for a pair at each probability p, positive or negative."""
    logits = torch.stack([z, torch.zeros_like(z)], dim=1).requires_grad_(True)  # label 1: the other label
    y = torch.zeros_like(logits)
    y[:, 0 if target == "positive" else 1] = 1.0
    loss_fn(logits, y).backward()
    return (logits.grad[:, 0] * logits.numel()).abs().numpy()  # the losses average over N x L pairs


grads = pd.concat([pd.DataFrame({"loss": name, "target": target, "p": p, "gradient": gradient_on_label(fn, target)})
                   for name, fn in supervised.items() for target in ("positive", "negative")])
plots.loss_gradient_curves(grads).show()

# %% tags=["hide-input"]
at = grads.set_index(["loss", "target", grads["p"].round(2)])["gradient"]
display(Markdown("\n".join(
    [f"- An easy negative at p = 0.05 is pushed with {at[('BCE', 'negative', 0.05)]:.3f} by BCE, "
     f"{at[('Focal', 'negative', 0.05)]:.1e} by focal, {at[('ASL', 'negative', 0.05)]:.3f} by ASL and "
     f"{at[('DB', 'negative', 0.05)]:.1e} by DB.",
     f"- A rare positive still at p = 0.10 is pushed with {at[('BCE', 'positive', 0.1)]:.3f} by BCE, "
     f"{at[('Focal', 'positive', 0.1)]:.3f} by focal, {at[('ASL', 'positive', 0.1)]:.3f} by ASL and "
     f"{at[('DB', 'positive', 0.1)]:.3f} by DB.",
     f"- Ratio of the two (positive at 0.10 over negative at 0.05): BCE "
     f"{at[('BCE', 'positive', 0.1)] / at[('BCE', 'negative', 0.05)]:,.0f}, focal "
     f"{at[('Focal', 'positive', 0.1)] / at[('Focal', 'negative', 0.05)]:,.0f}, DB "
     f"{at[('DB', 'positive', 0.1)] / at[('DB', 'negative', 0.05)]:,.0f}; ASL gives the negative no gradient at all."])))

# %% [markdown]
# Read the dashed curves on the left of the figure: that is where the thousand easy negatives of
# every batch live. BCE gives them a gradient that grows linearly with $p$; focal and DB flatten
# it to almost nothing; ASL cuts it to exactly zero below the margin. On the solid curves, a
# positive still at a low probability keeps a large gradient under every loss. ASL gives it exactly
# the BCE gradient. Focal gives it slightly more below $p \approx 0.3$: differentiating the factor
# $(1-p)^\gamma$ adds the term $-\gamma p (1-p)^\gamma \log p$. DB gives it about half, because its
# focal weight $\alpha_f = 0.5$ and the re-balanced weight scale every term. The absolute size
# matters little, since Adam rescales the update anyway. The *ratio* is what matters for the tail. What
# a rare label needs is that its few positives are not outvoted by the negatives of the same
# label, and each of the three alternatives to BCE tilts that vote towards the positives by one
# or more orders of magnitude. None of them, however, creates a positive where the batch has
# none: a tail label absent from a batch gets only negative gradient under all four losses. That
# is the lack of positives of chapter 2 seen from the classifier's side, and it is the argument
# for prototypes and for a representation learnt before the classifier.

# %% [markdown]
# ## A classifier from scratch needs its own learning rate
#
# The rows that train a classifier (BCE, focal, ASL and DB here, and the fine-tuning row of
# chapter 4) put a freshly initialised linear layer on top of a pre-trained encoder. The two parts
# start in very different places. The encoder's weights are already good: the usual fine-tuning
# learning rate, $5 \cdot 10^{-5}$, moves them gently so that pre-training is not forgotten. The
# classifier starts random, with every logit near 0, that is every label predicted at $p \approx
# 0.5$, while the right output for most pairs is a probability of a few percent.
#
# How far does the classifier have to travel? Consider only the bias $b_c$ of each label. At the
# best constant prediction it equals the label's log-odds, $\log \frac{f_c}{1 - f_c}$ with $f_c$
# the label's frequency: about $-3.5$ for a label on 3 % of the documents and $-6.9$ for one on
# 0.1 %. Adam, the optimiser of every run, moves each parameter by roughly the learning rate per
# step, whatever the size of the gradient (it divides the gradient by a running estimate of its
# own scale). The number of steps the bias needs is therefore about $|b_c| / \eta$. The cell below
# computes that for the disaster labels at a few learning rates.

# %%
train_y = load_run_dataset(Config(dataset="disaster")).split("train").labels
freq = train_y.mean(axis=0).clip(1 / len(train_y), None)
target_bias = np.log(freq / (1 - freq))                          # where each label's bias must go
steps_needed = pd.DataFrame({f"lr {lr:g}": np.abs(target_bias) / lr for lr in (5e-5, 1e-3, 1e-2, 3e-2)},
                            index=pd.Index(frequency_groups(train_y.sum(axis=0)), name="group"))
median_steps = steps_needed.groupby("group").median().loc[["head", "medium", "tail"]]
median_steps.round(0).astype(int)

# %% tags=["hide-input"]
display(Markdown(
    f"At the encoder's learning rate the median tail bias needs about {median_steps.loc['tail', 'lr 5e-05']:,.0f} "
    f"steps and the median head bias {median_steps.loc['head', 'lr 5e-05']:,.0f}; at 1e-3, "
    f"{median_steps.loc['tail', 'lr 0.001']:,.0f} and {median_steps.loc['head', 'lr 0.001']:,.0f}; at 3e-2, "
    f"{median_steps.loc['tail', 'lr 0.03']:,.0f} and {median_steps.loc['head', 'lr 0.03']:,.0f}. The converged grid "
    f"trains for {nb.grid_settings(grid, dataset='disaster')['max_steps']} steps on disaster and "
    f"{nb.grid_settings(grid, dataset='foldoc')['max_steps']} on FOLDOC, the cpu profile for {config('bce').max_steps}."))

# %% [markdown]
# The table gives, per frequency group, the median number of Adam steps the bias alone needs to
# reach its label's log-odds; rare labels sit farther from 0 and need the most. As long as the
# biases have not arrived, the classifier predicts labels it should not, and the gradient it
# sends down into the encoder is mostly about the bias, not about the text. A higher learning rate for the head
# (the classifier layer, and the projection head of the contrastive rows) lets it catch up in a
# few dozen to a few hundred steps while the encoder keeps its gentle rate. The `cpu` profile
# uses $3 \cdot 10^{-2}$ for the classifier of the supervised rows, because its runs have only
# 30 steps.
#
# Which value is right depends on the loss. Focal and DB shrink the gradient of easy pairs, and
# Adam's normalisation partly undoes that, so the losses do not share one best rate, and the
# wrong rate can make a good loss look bad. Choosing one rate for all rows would hand the
# comparison to whichever loss that rate happens to suit. The converged grid therefore gives every
# row that trains a classifier a small grid, `Config.lr_head_grid = [3e-2, 1e-1]`. It trains one run
# per value and keeps the run with the best **validation** micro-F1, never the test score, which
# stays untouched until the end. (A first start of the grid used `[1e-3, 1e-2]`: every classifier
# row chose the larger value and was still improving at the end of its budget, as the table above
# predicts; `results/cpu_converged/README.md` has those runs.) The contrastive rows do not need this: their classifier is the
# linear probe of chapter 5, which already searches its own learning rate and weight decay on
# validation.
#
# ## Selecting on validation micro-F1, at 0.5 or at a tuned threshold
#
# Every run evaluates on validation several times and keeps the checkpoint with the best
# validation micro-F1. Micro-F1 pools the decisions of all (document, label) pairs. It is dominated
# by the frequent labels, and that is the reason to select on it. A validation split has only a
# handful of documents for a tail label, sometimes none. Macro-F1 averages one F1 per label, so a
# single document more or less on a tail label moves it by several points, and selecting on it
# would mostly select noise. The cost of the choice is a mild bias towards the head, which the
# tables below make visible by reporting the tail separately.
#
# A decision needs a threshold. The default predicts a label when $p \geq 0.5$. That suits BCE,
# whose probabilities are roughly calibrated, but not the other losses. Focal loss stops
# pushing confident predictions, so its probabilities huddle closer to 0.5. ASL's margin leaves
# negatives anywhere below 0.3 untouched. DB shifts every logit by the label's prior. For
# calibrated scores, the threshold that maximises F1 is half the best achievable F1
# {cite:p}`lipton2014thresholding`, so it is usually well below 0.5 on hard labels. Each run
# therefore also reports its scores at **one global threshold tuned on validation** (columns
# `*_tuned`, `abalone_core.evaluation.metrics.best_global_threshold`, a grid from 0.05 to 0.95). Comparing
# losses at 0.5 partly compares their calibration; comparing them at tuned thresholds compares
# their rankings of labels more fairly.
#
# ## Two further rows: TF-IDF with linear classifiers, and MulSupCon
#
# The **tfidf-linear** row has no neural network at all. Each document becomes a sparse vector
# of TF-IDF weights over the training vocabulary, and for every label a separate L2-regularised
# linear SVM {cite:p}`fan2008liblinear` separates its documents from the others. LibMultiLabel
# chooses the cost $C$ on validation and a decision threshold per label by cross-validation
# {cite:p}`lin2023linear`. Training takes seconds on one core. Because each label has its own
# classifier and its own threshold, a tail label is not outvoted by the head the way it is in a
# shared network trained on a sum of pair losses. Keywords are often decisive in short messages
# and dictionary entries, so this row sets the bar every encoder has to clear.
#
# **MulSupCon** is a contrastive loss, trained like L_MSC and scored by the same linear probe.
# Every (document, label) pair is an anchor of its own. Its positives are the other documents of
# the batch and queue that carry that label, and its denominator runs over all the other keys. It
# has no prototypes, so an anchor whose label is absent from the keys is dropped. It has no
# $\beta$ either. In L_MSC every document key weighs only $\beta = 0.1$ in the denominator, against
# 1 for a prototype, which keeps the repulsion of the many documents from swamping the attraction
# (chapter 3); in MulSupCon every key weighs fully. The row therefore isolates what L_MSC adds to a
# per-label contrastive loss. Both rows are trained and scored in the
# converged grid; the live demonstration below trains the cheap supervised rows and TF-IDF.

# %% [markdown]
# ## A demonstration on the cpu profile
#
# The cell trains BCE, focal, ASL, DB and TF-IDF with the chapter's profile, or reads them when
# they already ran with the same settings. The L_MSC run of chapter 4 joins the table when it
# exists. With the `cpu` profile these are **demonstration runs**: 30 optimiser steps on 600
# training documents. They show the pipeline and the first moves of each loss, and their ranking
# is not evidence about the losses.

# %%
demo_rows = ["bce", "focal", "asymmetric", "db", "tfidf-linear"]
metrics = {o: nb.run_or_load(config(o)) for o in demo_rows}
msc = config("msc")
if nb.saved_config(msc.output_dir) is not None:  # the L_MSC run of chapter 4, if it ran with these settings
    metrics["msc"] = nb.run_or_load(msc)
demo = nb.scores_table({nb.row_name(o): m for o, m in metrics.items()})
demo["micro_f1_tuned"] = [m["test"].get("micro_f1_tuned", np.nan) for m in metrics.values()]
demo["macro_f1_tuned"] = [m["test"].get("macro_f1_tuned", np.nan) for m in metrics.values()]
display(Markdown(f"**Demonstration** ({profile} profile: {config('bce').max_steps} steps, "
                 f"{metrics['bce']['n_documents']['train']} training documents), test scores in percent"))
demo.round(1).rename(columns={"micro_f1": "micro-F1", "macro_f1": "macro-F1", "hamming": "Hamming x 1000",
                               "f1_head": "head F1", "f1_medium": "medium F1", "f1_tail": "tail F1",
                               "micro_f1_tuned": "micro-F1 tuned", "macro_f1_tuned": "macro-F1 tuned"})

# %% [markdown]
# The validation curves of the trained rows, and their training losses (each loss on its own
# scale, so only the shapes compare):

# %%
trained = [o for o in metrics if objectives.row_kind(o) not in ("untrained", "tfidf")]
curves = pd.concat([nb.history(config(o).output_dir).assign(run=nb.row_name(o)) for o in trained])
fig = plots.training_curves(curves, x="step", y="val_micro_f1", title="Demonstration: validation micro-F1")
plots.color_by_loss(fig).update_layout(xaxis_title="optimiser step", yaxis_title="validation micro-F1 (%)").show()
fig = plots.training_curves(curves, x="step", y="train_loss", title="Demonstration: training loss")
plots.color_by_loss(fig).update_layout(xaxis_title="optimiser step", yaxis_title="training loss").show()

# %% [markdown]
# ### Which labels the test split can score
#
# A per-label F1 means something only if the test split holds documents of that label. The table
# gives, for the demonstration's own subset, the documents of each label in the training and
# test splits beside each row's test F1, most frequent label first; the tail is at the bottom.

# %%
demo_support = support(load_run_dataset(config("bce")))
per_label = per_label_frame({nb.row_name(o): m for o, m in metrics.items()}, demo_support)
per_label.round(1)

# %% tags=["hide-input"]
empty = per_label[per_label["test docs"] == 0]
tail = per_label[per_label["group"] == "tail"]
display(Markdown(
    f"In this subset, {len(empty)} of {len(per_label)} labels have no test document "
    f"({int((tail['test docs'] == 0).sum())} of the {len(tail)} tail labels): their F1 of 0 says nothing about "
    f"the losses. The tail labels that do appear have {int(tail['test docs'].sum())} test documents in all."))
fig = plots.f1_vs_frequency({nb.row_name(o): m["test"]["per_label_f1"] for o, m in metrics.items()},
                            metrics["bce"]["train_label_counts"], names=metrics["bce"]["label_names"],
                            color_by="loss", title="Demonstration: per-label test F1 against training frequency")
fig.update_layout(xaxis_title="training documents of the label", yaxis_title="test F1 (%)").show()

# %% [markdown]
# ## The evidence: the converged grid
#
# The committed grid trains every row on the whole splits of the disaster messages (33 labels) and
# of FOLDOC (79 labels) for a budget meant to let it converge: MiniLM with its top layer trained,
# 800 steps of batch 32 for every trained row on disaster and 1600 on FOLDOC, the head learning
# rate of the classifier rows chosen on validation, several seeds per row. Every run records
# whether it converged (chapter 4's rule: validation micro-F1 still rising by 0.5 points or more
# in the last quarter of the budget means it did not). Only runs of this one experiment are
# averaged; the short runs above and the undertrained `sweep_cpu` grid are different experiments
# and never enter these means. The grid fills as runs finish, so a row may have fewer seeds than
# planned, or none yet. Each cell is the mean over the finished seeds ± the half-width of its 95 %
# Student-t interval, with the number of seeds in brackets (chapter 8 explains the interval);
# `seeds` counts the seeds again and `converged` the runs that passed the rule (`n/a` for
# TF-IDF, which has no step budget).

# %% tags=["hide-input"]
grid_file = nb.results_dir(results_dir) / grid / "runs.jsonl"
records = grid_records(grid_file, objectives=ROWS)  # finished runs' metrics records
datasets = ["disaster", "foldoc"]
first_metrics = ("micro_f1", "macro_f1", "f1_tail")
second_metrics = ("micro_f1_tuned", "macro_f1_tuned", "psp_at_3")


def grid_table(dataset, metrics, stat="interval"):
    """Rows = the chapter's objectives (the paper's names), columns = metrics; empty rows kept."""
    names = {o: nb.row_name(o) for o in ROWS}
    try:
        table = sw.aggregate(grid_file, columns=(), where={"dataset": dataset}, metrics=metrics, stat=stat,
                             paper="none")
    except (ValueError, FileNotFoundError, KeyError):  # no finished run of this dataset yet
        table = pd.DataFrame(index=pd.Index([], name="objective"), columns=list(metrics))
    table = table.reindex(ROWS)
    table.index = [names[o] for o in ROWS]
    return table


runs_table = sw.records_table(grid_file) if grid_file.exists() else pd.DataFrame()
seeds, converged, unfinished = {}, {}, {}  # unfinished: rows with a run that did not converge
for d in datasets:
    counts = grid_table(d, ("macro_f1",), stat="count")["macro_f1"].fillna(0).astype(int)
    seeds[d] = counts
    part = runs_table[runs_table["dataset"] == d] if len(runs_table) else runs_table
    flags = {o: part.loc[part["objective"] == o, "converged"] if len(part) else pd.Series(dtype=object)
             for o in ROWS}
    converged[d] = pd.Series({nb.row_name(o): "n/a" if objectives.row_kind(o) in ("untrained", "tfidf") else int((f == True).sum())  # noqa: E712
                              for o, f in flags.items()})
    unfinished[d] = {nb.row_name(o): int((f == False).sum()) for o, f in flags.items() if (f == False).any()}  # noqa: E712
    for label, shown in (("F1 at the 0.5 threshold (percent)", first_metrics),
                         ("tuned threshold, and PSP@3 (percent)", second_metrics)):
        t = grid_table(d, shown).fillna("not finished").replace("", "not finished")
        t.columns = [c.replace("micro_f1", "micro-F1").replace("macro_f1", "macro-F1").replace("f1_tail", "tail F1")
                     .replace("_tuned", " tuned").replace("psp_at_3", "PSP@3") for c in t.columns]
        t["seeds"] = counts.to_numpy()
        t["converged"] = converged[d].to_numpy()
        display(Markdown(f"**{d}**, converged grid: {label}"))
        display(t)
if not records:
    display(Markdown(f"No finished run of these rows in `{grid_file}` yet."))

# %% tags=["hide-input"]
means = {d: grid_table(d, ("micro_f1", "macro_f1", "f1_tail"), stat="mean") for d in datasets}
stds = {d: grid_table(d, ("micro_f1", "macro_f1", "f1_tail"), stat="std") for d in datasets}
lines = []
for d in datasets:
    n = seeds[d]
    ready = n[n >= 2].index.tolist()
    waiting = n[n < 2].index.tolist()
    if waiting:
        lines.append(f"- **{d}**: not yet testable for {', '.join(waiting)} (fewer than two finished seeds).")
    if unfinished[d]:
        late = [m["convergence"] for m in records if m.get("dataset") == d and m.get("converged") is False]
        f1_gain = max((c["improvement"] for c in late if c.get("metric") == "val_micro_f1"), default=None)
        loss_gain = max((c["improvement"] for c in late if c.get("metric") != "val_micro_f1"), default=None)
        lines.append(f"- **{d}**: " + ", ".join(f"{r} ({k} run{'s' if k != 1 else ''})" for r, k in unfinished[d].items())
                     + " did not converge: in the last quarter of the budget, "
                     + " and ".join(([f"validation micro-F1 still rose by up to {f1_gain:.1f} points"] if f1_gain is not None else [])
                                    + ([f"the validation loss still fell by up to {100 * loss_gain:.1f} %"] if loss_gain is not None else []))
                     + ". "
                     "Such a row was still learning when its budget ran out; its scores are not those of the "
                     "loss at convergence, and no comparison with it is a verdict (chapter 8 marks it not testable).")
    if len(ready) >= 2:
        ranked = means[d].loc[ready, "macro_f1"].sort_values(ascending=False)
        top, second = ranked.index[0], ranked.index[1]
        gap = ranked.iloc[0] - ranked.iloc[1]
        spread = max(stds[d].loc[top, "macro_f1"], stds[d].loc[second, "macro_f1"])
        lines.append(f"- **{d}**, rows with at least two seeds, by test macro-F1: "
                     + ", ".join(f"{r} {means[d].loc[r, 'macro_f1']:.1f}"
                                 + (" (not converged)" if r in unfinished[d] else "") for r in ranked.index)
                     + f". The first two differ by {gap:.1f} points, "
                     + ("less than" if gap < spread else "more than")
                     + f" the larger of their seed standard deviations ({spread:.1f}).")
        tail_best = means[d].loc[ready, "f1_tail"].idxmax()
        lines.append(f"- **{d}**: the best tail macro-F1 among those rows is {tail_best} "
                     f"({means[d].loc[tail_best, 'f1_tail']:.1f}).")
    elif ready:
        lines.append(f"- **{d}**: only {ready[0]} has two or more seeds; no comparison is testable yet.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# A difference of means smaller than the spread between seeds is not a finding. Chapter 8 tests
# the paper's claims on *paired* seeds, which is sharper, because both rows of a pair share the
# seed's initialisation and batch order.
#
# The next table counts, per dataset and row, how many runs chose each head learning rate of the
# grid on validation. If every run of a row chose the same value, a single value would have done
# for that row; if the choice changes between rows or datasets, one shared value would have
# favoured some losses over others.

# %% tags=["hide-input"]
chosen = [{"dataset": m.get("dataset"), "row": nb.row_name(m["objective"]), "seed": m["config"].get("seed"),
           "head learning rate": m["lr_head_search"].get("selected")}
          for m in records if "lr_head_search" in m]
if chosen:
    chosen = pd.DataFrame(chosen)
    chosen = chosen.pivot_table(index=["dataset", "row"], columns="head learning rate", values="seed",
                                aggfunc="count", fill_value=0)
    chosen.columns = [f"chose {c:g}" for c in chosen.columns]
    display(chosen.astype(int))
    varied = sorted({row for (d, row), r in chosen.iterrows() if (r > 0).sum() > 1})
    per_row = {(d, row): chosen.columns[np.argmax(r.to_numpy())] for (d, row), r in chosen.iterrows()}
    display(Markdown(
        ("Runs of the same row chose different rates for " + ", ".join(varied) + ". " if varied
         else "Within each row and dataset every finished run chose the same rate. ")
        + ("Only one (dataset, row) has finished its search so far, so rows cannot be compared yet."
           if len(per_row) < 2 else "Different rows or datasets chose different rates."
           if len(set(per_row.values())) > 1 else "All rows chose the same rate so far.")))
else:
    display(Markdown("No classifier row of the grid has finished its head learning-rate search yet."))

# %% [markdown]
# ### When 0.5 is the wrong cut: ASL and DB
#
# ASL and DB change more than the weight of a pair: they change where the probabilities of a
# trained model sit. ASL's margin ignores every negative whose probability is below $m$ and its
# $\gamma_-$ silences the others (the values are those stated above), so little pushes negatives
# down and probabilities drift upwards: at 0.5 the model predicts far too many labels. DB's negative-tolerant term scales the
# negatives' logits by $\lambda$ and its focal factor mutes confident pairs, which moves
# probabilities too. A fixed threshold of 0.5 (the released code's rule; the paper states no
# threshold, see the reproduction notes) then measures calibration as
# much as ranking. Three columns of the grid separate the two: the threshold tuned on validation
# (far from 0.5 means the probabilities are shifted), the Hamming loss at 0.5 (how many wrong
# decisions the fixed cut makes) and mAP, which needs no threshold at all. The last column is
# the step of the checkpoint that validation micro-F1 at 0.5 selected: a loss whose
# probabilities sit in the wrong place can look best early in training, before they drift.

# %% tags=["hide-input"]
classifier_rows = [nb.row_name(o) for o in ROWS if o in ("bce", "focal", "asymmetric", "db")]
calibration_columns = {"tuned_threshold": "tuned threshold", "micro_f1": "micro-F1 at 0.5",
                       "micro_f1_tuned": "micro-F1 tuned", "hamming": "Hamming x1e3 at 0.5", "map": "mAP",
                       "selected_step": "selected step"}
calibration = pd.concat({d: grid_table(d, tuple(calibration_columns), stat="mean").loc[classifier_rows]
                         for d in datasets}, names=["dataset", "row"]).dropna(how="all")
calibration = calibration.rename(columns=calibration_columns).astype(float)
if len(calibration):
    display(Markdown("Classifier rows of the converged grid, test split, mean over the finished seeds"))
    display(calibration.style.format(precision=2).format("{:.0f}", subset=["selected step"]))
    lines = []
    for (d, row), r in calibration.iterrows():
        if row == nb.row_name("bce") or (d, nb.row_name("bce")) not in calibration.index:
            continue
        bce = calibration.loc[(d, nb.row_name("bce"))]
        lines.append(f"- **{d}, {row}**: tuned threshold {r['tuned threshold']:.2f} (BCE {bce['tuned threshold']:.2f}); "
                     f"micro-F1 {r['micro-F1 at 0.5']:.1f} at 0.5 and {r['micro-F1 tuned']:.1f} tuned "
                     f"(BCE {bce['micro-F1 at 0.5']:.1f} and {bce['micro-F1 tuned']:.1f}); mAP {r['mAP']:.1f} "
                     f"(BCE {bce['mAP']:.1f}).")
    display(Markdown("\n".join(lines)))
else:
    display(Markdown("No classifier row of the grid has finished yet."))

# %% [markdown]
# Where the tuned threshold closes most of the gap to BCE, the loss ranked the labels well and
# only its probabilities were off; where mAP stays well below BCE's too, the loss also learned a
# worse ranking under this budget. The second case is not what the paper reports on AAPD, where
# ASL and focal loss are within a point of BCE in both micro- and macro-F1: it belongs to this
# budget (one trained layer, 800 or 1600 steps), these learning rates and the 0.5 cut used to select the
# checkpoint.

# %% [markdown]
# The same question decides how to read L_MSC's macro-F1 against BCE's: the converged grid gives
# both rows at 0.5 and at their own tuned thresholds.

# %% tags=["hide-input"]
lead = []
for d in datasets:
    m = grid_table(d, ("macro_f1", "macro_f1_tuned"), stat="mean")
    sd = grid_table(d, ("macro_f1", "macro_f1_tuned"), stat="std")
    msc_row, bce_row = nb.row_name("msc"), nb.row_name("bce")
    if m.loc[[msc_row, bce_row]].isna().any().any():
        continue
    spread = float(sd.loc[[msc_row, bce_row]].max().max())
    lead.append("- " + prose.lead_sentence(msc_row, bce_row, tuple(m.loc[[msc_row, bce_row], "macro_f1"]),
                                           tuple(m.loc[[msc_row, bce_row], "macro_f1_tuned"]), spread, d))
display(Markdown("\n".join(lead) if lead else "L_MSC or BCE has no finished run in the grid yet."))

# %% [markdown]
# ### Per-label test support of the whole splits
#
# The grid scores the whole test splits. The table lists the tail third of the labels of each
# dataset with their training and test documents, beside each row's test F1 averaged over its
# finished seeds. A tail label with no test document scores 0 under every loss; that zero is not
# evidence.

# %% tags=["hide-input", "full-width"]
for d in datasets:
    counts_d = support(load_run_dataset(Config(dataset=d)))
    runs = {}
    for o in ROWS:
        mean = mean_over_seeds(grid_records(grid_file, dataset=d, objectives=(o,)))
        if mean is not None:
            runs[nb.row_name(o)] = mean
    table = per_label_frame(runs, counts_d)
    no_test = int((table["test docs"] == 0).sum())
    display(Markdown(f"**{d}**: {len(table)} labels, {no_test} without a test document; tail labels below "
                     f"(F1 in percent, mean over finished seeds)"))
    display(table[table["group"] == "tail"].round(1))

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: who gets the gradient in a real batch?
# Draw a batch of 32 disaster training documents. Give every positive pair the probability 0.3
# and every negative pair 0.05, as a classifier might early in training. For each of the four
# supervised losses, compute with autograd the share of the total gradient (sum of $|\partial L /
# \partial z|$) that falls on positive pairs, and on positive pairs of tail labels.
# :::

# %% tags=["hide-cell"]
# Solution 1: gradient mass by sign and group on one real batch.
full = load_run_dataset(Config(dataset="disaster")).split("train").labels
groups_full = frequency_groups(full.sum(axis=0))
batch = torch.tensor(full[np.random.default_rng(seed).choice(len(full), 32, replace=False)], dtype=torch.float64)
p0 = torch.where(batch > 0, 0.3, 0.05)
all_counts = torch.tensor(full.sum(axis=0), dtype=torch.float64)
batch_losses = {"BCE": losses.bce_loss, "Focal": losses.focal_loss, "ASL": losses.asymmetric_loss,
                "DB": lambda x, y: losses.db_loss(x, y, class_counts=all_counts, n_train=len(full))}
rows = {}
for name, fn in batch_losses.items():
    logits = torch.log(p0 / (1 - p0)).requires_grad_(True)
    fn(logits, batch).backward()
    g = logits.grad.abs()
    tail_cols = torch.tensor(groups_full == "tail")
    rows[name] = {"positive pairs": int(batch.sum()), "share on positives": float(g[batch > 0].sum() / g.sum()),
                  "share on tail positives": float(g[(batch > 0) & tail_cols[None, :]].sum() / g.sum())}
solution1 = pd.DataFrame(rows).T
display(solution1.style.format({"positive pairs": "{:.0f}", "share on positives": "{:.1%}",
                                "share on tail positives": "{:.1%}"}))
print(f"Of {int(batch.numel())} pairs, {int(batch.sum())} are positive. BCE sends "
      f"{solution1.loc['BCE', 'share on positives']:.0%} of its gradient to them, focal "
      f"{solution1.loc['Focal', 'share on positives']:.0%}, ASL {solution1.loc['ASL', 'share on positives']:.0%} "
      f"and DB {solution1.loc['DB', 'share on positives']:.0%}.")

# %% [markdown]
# :::{admonition} Exercise 2: change the threshold
# Fit a one-vs-rest logistic regression on TF-IDF features of the demonstration's subset (a
# second or two with scikit-learn). Score the test split at thresholds from 0.05 to 0.95, then
# with the single threshold that `best_global_threshold` picks on validation. How far is the best
# test threshold from 0.5, and how much of the gap does the validation choice recover?
# :::

# %% tags=["hide-cell"]
# Solution 2: micro- and macro-F1 against the decision threshold.
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from abalone_core.evaluation.metrics import best_global_threshold, multilabel_scores

ds = load_run_dataset(config("bce"))
parts = {s: ds.split(s) for s in ("train", "validation", "test")}
vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2)
x = {s: (vectorizer.fit_transform if s == "train" else vectorizer.transform)(list(part.texts))
     for s, part in parts.items()}
keep = parts["train"].labels.sum(axis=0) > 0                 # a label without training documents cannot be fitted
model = OneVsRestClassifier(LogisticRegression(C=10, max_iter=1000)).fit(x["train"], parts["train"].labels[:, keep])
proba = {s: model.predict_proba(x[s]) for s in ("validation", "test")}
thresholds = np.round(np.arange(1, 20) * 0.05, 2)
sweep = pd.DataFrame([{"threshold": t, **multilabel_scores(parts["test"].labels[:, keep], (proba["test"] >= t).astype(np.int8))}
                      for t in thresholds]).set_index("threshold")[["micro_f1", "macro_f1"]]
tuned = best_global_threshold(parts["validation"].labels[:, keep], proba["validation"])
print(f"best test threshold for micro-F1: {sweep['micro_f1'].idxmax():.2f} ({sweep['micro_f1'].max():.1f}); "
      f"at 0.5: {sweep.loc[0.5, 'micro_f1']:.1f}; threshold chosen on validation: {tuned:.2f} "
      f"({sweep.loc[round(tuned, 2), 'micro_f1']:.1f} on test)")
fig = plots.training_curves(sweep.reset_index().melt("threshold", var_name="run", value_name="F1"),
                            x="threshold", y="F1", title="Test F1 against the decision threshold")
fig.update_layout(xaxis_title="decision threshold", yaxis_title="test F1 (%)").show()

# %% [markdown]
# :::{admonition} Exercise 3: how fast does a bias learn?
# Train only the biases of a 33-label classifier (no features, BCE, Adam) on the label frequencies
# of the disaster training split, for 30 and for 400 steps, with learning rates $10^{-3}$ and
# $3 \cdot 10^{-2}$. After each run, what probability does the classifier still give a typical
# label, against the labels' typical frequency, and how far are the biases from the log-odds?
# :::

# %% tags=["hide-cell"]
# Solution 3: Adam moves each parameter by about lr per step.
target = torch.tensor(train_y.mean(axis=0), dtype=torch.float32)
rows = []
for lr in (1e-3, 3e-2):
    for steps in (30, 400):
        bias = torch.zeros(len(target), requires_grad=True)
        opt = torch.optim.Adam([bias], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(bias, target).backward()
            opt.step()
        bias = bias.detach()
        rows.append({"learning rate": f"{lr:g}", "steps": steps,
                     "median predicted probability": float(torch.sigmoid(bias).median()),
                     "median label frequency": float(target.median()),
                     "median distance to the log-odds": float((bias - torch.logit(target.clamp(1e-4))).abs().median())})
pd.DataFrame(rows).round(3)

# %% [markdown]
# ## What we saw
#
# - The four supervised losses differ in how they weigh a (document, label) pair. BCE pushes every
#   negative in proportion to its probability, so a thousand easy negatives outvote a rare
#   positive. Focal loss and DB shrink the gradient of easy pairs by orders of magnitude, ASL
#   sets it to zero below its margin, and DB also moves the weight of a document towards its
#   rarest label. None of them gives a tail label a positive that the batch does not contain.
# - A classifier trained from scratch must move its biases to the labels' log-odds. Adam moves a
#   parameter by about its learning rate per step, so the head needs a learning rate far above
#   the encoder's. The best value depends on the loss, so the converged grid chooses it per row
#   and seed on validation micro-F1 from a small grid.
# - Checkpoints are selected on validation micro-F1, which is stable where macro-F1 is dominated
#   by the noise of tail labels with a handful of validation documents. Scores at the 0.5
#   threshold partly measure calibration; the tuned threshold compares the losses' rankings.
#   ASL shifts its probabilities upwards, so at 0.5 it predicts too many labels and validation
#   F1 at 0.5 can select an early checkpoint; the tuned threshold and mAP show how much of its
#   gap to BCE is calibration and how much is ranking.
# - TF-IDF with per-label linear classifiers trains in seconds and sets the bar. MulSupCon is a
#   per-label contrastive loss without prototypes or $\beta$, the row that shows what they add.
# - The live runs of this chapter are a demonstration. The comparison comes from the converged
#   grid, one experiment with one budget, reported as mean ± 95 % interval with the number of finished
#   seeds; with fewer than two seeds a row is not yet comparable. The per-label support shows
#   which tail labels the test split can score at all.
