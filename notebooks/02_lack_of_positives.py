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
# # The lack of positives
#
# A supervised contrastive loss learns by pulling an anchor towards its *positives*, the other
# keys that share one of its labels. The paper {cite:p}`audibert2024abalone` names the first
# obstacle to doing this on long-tailed multi-label data the **lack of positives**: a document
# carrying a rare label often finds no other document with that label among the few dozen keys of
# a batch. Under L_Base such an anchor is either skipped altogether (no positive at all) or
# attracted only through its frequent labels, so the rare label receives no pull. This chapter
# counts how often that happens on the real label matrices of the disaster messages and of FOLDOC,
# and how the three remedies of the paper's ablation change the count: a larger batch, a memory
# queue of earlier documents {cite:p}`he2020moco`, and one prototype per label.
#
# You will learn
#
# - the two ways an anchor can lack positives: as a whole (L_Base skips it) and label by label
#   (one of its labels gets no attraction), and which of the two L_MSC cares about;
# - how the chance of missing a positive follows from a label's frequency alone, with a formula
#   you can check against simulated batches;
# - why growing the batch helps the head and medium labels quickly and the tail slowly, why a queue
#   of 512 keys helps much more than doubling the batch, and why prototypes settle the question;
# - how to reason about a new dataset, queue size or batch size before training anything.
#
# Nothing is trained here: only the label matrices matter, so every number in this chapter is
# exact up to the randomness of the drawn batches.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
datasets = ["disaster", "foldoc", "debtags"]
batch_sizes = [8, 16, 32, 64, 128, 256]
queue_sizes = [0, 512]            # 512: the paper's queue
n_draws = 200                     # random batches per (batch size, queue size)
seed = 0
profile = "cpu"                   # unused here: this chapter trains nothing

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from scipy.stats import hypergeom

from abalone_core import analysis
from abalone_core.analysis import plots
from abalone_core import notebook as nb
from abalone_core.data import load_dataset
from abalone_core.evaluation.metrics import frequency_groups

env = nb.setup()
labels, label_groups, frames = {}, {}, {}
for name in datasets:
    train = load_dataset(name).split("train")
    y = train.labels[train.labels.any(axis=1)]  # contrastive training keeps labelled documents only
    labels[name], label_groups[name] = y, frequency_groups(y.sum(axis=0))
    frames[name] = analysis.lack_of_positives(y, batch_sizes, queue_sizes, n_draws=n_draws, seed=seed,
                                              groups=label_groups[name])
    print(f"{name}: {y.shape[0]} labelled training documents, {y.shape[1]} labels")

# %% [markdown]
# ## Two ways to lack positives
#
# Let $H$ be the keys an anchor $i$ is compared with: the other documents of its batch of size $B$,
# plus the $K$ documents of the queue when there is one. L_Base and L_BQueue attract $i$ towards the
# keys sharing **any** of its labels,
#
# $$ P(i) = \{ k \in H,\ k \ne i : y_i \cap y_k \neq \emptyset \}, $$
#
# and when $P(i)$ is empty the anchor has nothing to be attracted to: the loss leaves it out. L_MSC
# looks at each label $c$ of the anchor separately,
#
# $$ P(c, i) = \{ k \in H,\ k \ne i : c \in y_k \} \cup \{ c_c \}, $$
#
# so the relevant event is finer: the **(anchor, label) pair** $(i, c)$ lacks a positive when no
# other key carries $c$. An anchor can have plenty of positives through a head label while its tail
# label has none; under L_Base that tail label simply receives no attraction, and nobody notices.
# The prototype $c_c$ in $P(c, i)$ is what guarantees at least one positive per pair: with
# prototypes the count below is zero by construction (the `*_proto` columns of
# `analysis.lack_of_positives` compute it rather than assume it).
#
# The rules of the count: a batch is a random draw of $B$ labelled training documents; with a queue
# the keys are the batch plus $K$ further documents (the queue holds earlier batches, which are
# random draws too). Unlabelled documents are left out, as contrastive training drops them. An
# anchor counts in every frequency group it has a label in.

# %% tags=["hide-input"]
def batch_axis(fig, values):
    """Batch sizes as real tick labels, shares as distinct percentages, words as axis titles."""
    top = float(np.nanmax(values)) if len(values) else 1.0
    fig.update_xaxes(title_text="batch size B (documents)", tickvals=batch_sizes,
                     ticktext=[str(b) for b in batch_sizes])
    digits = 0 if top > 0.2 else 1 if top > 0.02 else 2    # enough decimals for distinct tick labels
    fig.update_yaxes(tickformat=f".{digits}%", rangemode="tozero")
    return fig


# %% [markdown]
# ## Anchors without any positive (L_Base)
#
# Share of labelled anchors with no positive in the batch (solid) or in the batch plus a queue
# (dashed), by the frequency group of the anchor's labels.

# %%
for name, frame in frames.items():
    fig = plots.lack_of_positives_curves(frame, "anchors_without_positive",
                                         title=f"{name}: anchors without any positive")
    fig.update_yaxes(title_text="share of anchors")
    batch_axis(fig, frame["anchors_without_positive"]).show()

# %% tags=["hide-input"]
at = lambda name, col, g, b=32, k=0: frames[name].set_index(["batch_size", "queue_size", "group"]).loc[(b, k, g), col]
display(Markdown("\n".join(
    f"- **{name}**, B = 32 without a queue: {at(name, 'anchors_without_positive', 'all'):.1%} of the anchors have no "
    f"positive at all ({at(name, 'anchors_without_positive', 'tail'):.1%} of those carrying a tail label)."
    for name in frames)))

# %% [markdown]
# How often a whole anchor lacks positives depends on the corpus. One shared label is enough for
# L_Base, so an anchor is safe as soon as one of its labels is frequent; chapter 1 measured how often
# tail labels travel with a head label, and a corpus where most documents carry some very frequent
# label (the disaster messages) keeps almost every anchor in the loss. A corpus with many labels and
# no dominant one (FOLDOC) leaves far more anchors alone, in every group. Either way the anchors that
# L_Base drops are those whose labels are all rare: exactly the documents the book is about.

# %% [markdown]
# ## (Anchor, label) pairs without a positive
#
# The per-label view that L_MSC uses: for each label of each anchor, is there another key carrying
# that label? Tail pairs are the ones left without attraction.

# %%
for name, frame in frames.items():
    fig = plots.lack_of_positives_curves(frame, "pairs_without_positive",
                                         title=f"{name}: (anchor, label) pairs without a positive")
    fig.update_yaxes(title_text="share of (anchor, label) pairs")
    batch_axis(fig, frame["pairs_without_positive"]).show()

# %% [markdown]
# The pair curves sit far above the anchor curves, and the gap is the blind spot of L_Base: a
# document can enter the loss through its head label while its tail label never finds a partner.
# The curves fall as the batch grows, but on a logarithmic batch axis they fall in very different
# ways. Head pairs fall fastest; tail pairs decline slowly, because a tail label's documents are
# rare, and how rare depends on the corpus (the sentence below reads the tail curves at the largest
# batch). The dashed curves show the queue: 512 extra keys shift every curve as if the batch were
# 512 documents larger, which is more than any batch size on the axis.

# %% tags=["hide-input"]
from abalone_core.report import prose

largest = max(batch_sizes)
alone = {name: at(name, "pairs_without_positive", "tail", b=largest, k=0) for name in frames}
display(Markdown(f"Without a queue, {prose.alone_sentence(alone, largest)}."))

# %% [markdown]
# ## Why: a label's frequency decides it
#
# The simulation is not needed to understand these curves. Take a label $c$ carried by $n_c$ of the
# $N$ labelled training documents, and an anchor carrying it. The other $m = B + K - 1$ keys are
# drawn without replacement from the remaining $N - 1$ documents, of which $n_c - 1$ carry $c$. The
# chance that none of them does is hypergeometric,
#
# $$ \Pr[\text{no positive for } c] = \frac{\binom{N - n_c}{m}}{\binom{N-1}{m}}
#    \approx \Big(1 - \frac{n_c - 1}{N - 1}\Big)^{m}. $$
#
# A label present in 1 % of the documents therefore misses a partner in a batch of 32 with
# probability about $0.99^{31} \approx 0.73$, and with a queue of 512 about $0.99^{543} \approx 0.004$.
# The number of keys $m$ sits in the exponent, which is why the queue is so effective, and the
# label's frequency sits in the base, which is why the tail needs so many more keys than the head.
# An anchor drawn at random carries $c$ with probability proportional to $n_c$, so the expected
# share of a group's pairs without a positive is the frequency-weighted mean of that probability
# over the group's labels. The function below computes it; it is the whole theory of this chapter in
# five lines.


# %%
def expected_pairs_without_positive(y, groups, batch_size, queue_size):
    """Expected share of (anchor, label) pairs with no other key carrying the label, per group."""
    n_docs, counts = len(y), y.sum(axis=0)
    keys = min(batch_size + queue_size - 1, n_docs - 1)
    p_alone = hypergeom.pmf(0, n_docs - 1, np.maximum(counts - 1, 0), keys)    # no other key carries c
    frame = pd.DataFrame({"group": groups, "pairs": counts, "lacking": counts * p_alone})
    by_group = frame.groupby("group")[["pairs", "lacking"]].sum()
    return by_group["lacking"] / by_group["pairs"]


# %% tags=["hide-input"]
rows = []
for name, frame in frames.items():
    for b in batch_sizes:
        for k in queue_sizes:
            formula = expected_pairs_without_positive(labels[name], label_groups[name], b, k)
            sim = frame[(frame["batch_size"] == b) & (frame["queue_size"] == k)].set_index("group")
            for g in ("head", "medium", "tail"):
                rows.append({"dataset": name, "batch size": b, "queue": k, "group": g,
                             "simulated": sim.loc[g, "pairs_without_positive"], "formula": formula[g]})
theory = pd.DataFrame(rows)
gap = (theory["simulated"] - theory["formula"]).abs().max()
display(Markdown(f"Over every dataset, batch size, queue size and group, the formula and the {n_draws} simulated "
                 f"draws differ by at most {gap:.1%} (a share of pairs)."))
theory.query("`batch size` == 32").set_index(["dataset", "queue", "group"])[["simulated", "formula"]] \
    .style.format("{:.1%}")

# %% [markdown]
# The formula and the simulation agree to within the noise of the draws, so the lack of positives
# is a property of the label frequencies and of the number of keys, nothing else. Two
# consequences follow. First, the remedy has to add **keys**, and keys are expensive in a batch
# (each one is a forward and backward pass through the encoder) but cheap in a queue (a stored
# vector from the momentum encoder, no gradient). Second, no affordable number of keys solves the
# problem for the rarest labels: a label with a handful of training documents stays alone in most
# batches whatever $B$ and $K$. Only a key that exists for every label, whatever its frequency,
# removes the problem, and that key is the prototype.

# %% [markdown]
# ## At the paper's batch size
#
# The table reads the curves at B = 32 (the paper's batch size), for each queue size. The last
# column counts the prototypes as keys, as in L_BQProto and L_MSC.

# %% tags=["hide-input"]
cols = {"anchors_without_positive": "anchors without positive", "pairs_without_positive": "pairs without positive",
        "pairs_without_positive_proto": "pairs, with prototypes"}
b = 32 if 32 in batch_sizes else batch_sizes[len(batch_sizes) // 2]
tables = {}
for name, frame in frames.items():
    t = frame[frame["batch_size"] == b].set_index(["queue_size", "group"])[list(cols)].rename(columns=cols)
    t.index.names = ["queue", "group"]
    tables[name] = t
    display(Markdown(f"**{name}**, batch size {b} (shares)"))
    display(t.style.format("{:.1%}"))

# %% tags=["hide-input"]
lines = []
for name, t in tables.items():
    k0, k1 = min(queue_sizes), max(queue_sizes)
    tail0 = t.loc[(k0, "tail"), "pairs without positive"]
    tail1 = t.loc[(k1, "tail"), "pairs without positive"]
    head0 = t.loc[(k0, "head"), "pairs without positive"]
    proto = t["pairs, with prototypes"].max()
    lines.append(f"- **{name}**: with B = {b} and no queue, {tail0:.0%} of the tail (anchor, label) pairs have no "
                 f"positive, against {head0:.0%} for head pairs; a queue of {k1} keys brings the tail share to "
                 f"{tail1:.0%}, and with prototypes it is {proto:.0%}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# This is the first argument for the prototypes of L_BQProto and L_MSC: a queue shrinks the problem,
# prototypes remove it. It is not the whole story, though. A prototype is a positive that the loss
# itself moves: at the start of training it is a random vector, and an anchor pulled towards a
# random vector learns little about its label. What the prototype guarantees is that every (anchor,
# label) pair contributes a term, so that the gradient of the rare labels is never zero, and that
# the prototype of a tail label is pulled towards each of its documents whenever one appears in a
# batch. The real documents in the queue are the better positives when they exist; the prototype is
# the fallback that always exists. Chapter 3 looks at the other half of the problem, the balance
# between the attraction these positives create and the repulsion of the denominator.

# %% [markdown]
# ## Hundreds of labels: anchors kept, labels left out
#
# The two ways of lacking positives can part widely on a corpus with hundreds of labels and several
# labels per document. Such an anchor is likely to share some frequent label with another key, so
# L_Base keeps it, and unlikely to meet another document with its rare label, so that label receives
# no pull. The table counts, per corpus, at the paper's batch size without a queue, the tail (anchor,
# label) pairs without a positive and, among them, those whose anchor L_Base keeps through another
# label: the *silent* tail pairs, which no count of skipped anchors reveals. It then adds the largest
# queue and reports the tail pairs still without a document positive: for them the prototype of
# L_BQProto and L_MSC is the only positive. The last column comes from the formula: how many
# documents $B + K$ the batch and the queue must hold together before at most half of the tail pairs
# lack a positive.

# %%
def smallest(name, target=0.10, batch=None):
    """Smallest batch size without a queue (or, given `batch`, smallest queue) at which at most `target`
    of the tail (anchor, label) pairs lack a positive, by the formula; None when all the documents do not
    suffice. Bisection: the expected share only falls as keys are added."""
    def enough(size):
        b, k = (size, 0) if batch is None else (batch, size)
        return expected_pairs_without_positive(labels[name], label_groups[name], b, k)["tail"] <= target

    low, high = 1, len(labels[name])              # the answer lies in (low, high]
    if not enough(high):
        return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


rows = []
for name, y in labels.items():
    sim = frames[name].set_index(["batch_size", "queue_size", "group"])
    rows.append({"dataset": name, "labels": y.shape[1], "labels per anchor": float(y.sum(axis=1).mean()),
                 "anchors kept by L_Base": 1 - sim.loc[(b, 0, "all"), "anchors_without_positive"],
                 "tail pairs without positive": sim.loc[(b, 0, "tail"), "pairs_without_positive"],
                 "of which silent": sim.loc[(b, 0, "tail"), "silent_pairs"]
                                    / sim.loc[(b, 0, "tail"), "pairs_without_positive"],
                 f"with a queue of {max(queue_sizes)}": sim.loc[(b, max(queue_sizes), "tail"), "pairs_without_positive"],
                 "B + K for half": smallest(name, 0.5)})
many = pd.DataFrame(rows).set_index("dataset")
many.style.format({"labels": "{:d}", "labels per anchor": "{:.1f}", "B + K for half": "{:,.0f}"},
                  na_rep="all documents do not suffice").format("{:.1%}", subset=list(many.columns[2:6]))

# %% tags=["hide-input"]
queue = max(queue_sizes)
lines = []
for name, row in many.iterrows():
    half = row["B + K for half"]
    lines.append(
        f"- **{name}** ({int(row['labels'])} labels, {row['labels per anchor']:.1f} per anchor): at B = {b}, L_Base "
        f"keeps {row['anchors kept by L_Base']:.1%} of the anchors, yet {row['tail pairs without positive']:.0%} of the "
        f"tail pairs have no positive, {row['of which silent']:.0%} of them in anchors it keeps. With a queue of "
        f"{queue} keys, {row[f'with a queue of {queue}']:.0%} of the tail pairs still have no document positive; "
        + ("even all the training documents would not give half of them one." if pd.isna(half) else
           f"half of them find one when the batch and the queue hold {half:,.0f} documents together."))
silent = many["tail pairs without positive"] * many["of which silent"]
loudest = silent.idxmax()
alone = many.index[many[f"with a queue of {queue}"] > 0.5].tolist()
lines.append("")
lines.append(
    f"**{loudest}** has the largest share of silent tail pairs: {silent[loudest]:.0%} of all its tail pairs, against "
    + ", ".join(f"{v:.0%} on {n}" for n, v in silent.drop(index=loudest).items()) + "."
    + (f" On {', '.join(f'**{n}**' for n in alone)} the queue of {queue} leaves most tail pairs without a document "
       "positive: there the prototype is the only positive of most tail pairs." if alone else
       f" On every corpus the queue of {queue} gives most tail pairs a document positive."))
for name, y in labels.items():
    all_skipped, tail_skipped = (at(name, "anchors_without_positive", g, b) for g in ("all", "tail"))
    if tail_skipped < all_skipped:
        with_tail = y[:, label_groups[name] == "tail"].any(axis=1)
        lines.append(
            f"On **{name}** an anchor with a tail label is even skipped less often than an anchor in general "
            f"({tail_skipped:.1%} against {all_skipped:.1%}): it carries {y[with_tail].sum(axis=1).mean():.1f} labels "
            f"on average, against {y.sum(axis=1).mean():.1f}, and one of them is likely to be frequent.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# A silent pair leaves no trace that L_Base would show: the anchor is in the loss, is pulled through
# its frequent labels, and the direction of its rare label is learned only through them, if at all.
# Counting the anchors that L_Base skips therefore understates the lack of positives wherever
# anchors carry several labels; the pair count is the one to watch. A queue adds documents, and helps
# exactly as much as the formula says: where the tail needs more documents than the queue holds,
# most tail pairs stay without a document positive. There the prototypes stop being a fallback and
# become the tail labels' main positives, so that the pull a tail label receives is whatever its
# prototype has learned: how the prototypes are trained matters most on such a corpus.

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: how large a batch would the tail need?
# With the formula above, find the smallest batch size (no queue) at which at most 10 % of the tail
# (anchor, label) pairs of each dataset lack a positive. Then find the smallest queue that does the
# same with the paper's batch of 32. Which of the two is affordable on one GPU?
# :::

# %% tags=["hide-cell"]
# Solution 1: search the number of keys with the formula (no simulation needed), with `smallest` above.
solution1 = pd.DataFrame({name: {"smallest batch, no queue": smallest(name),
                                 "smallest queue with B = 32": smallest(name, batch=32)} for name in datasets}).T
display(solution1)
print("The two answers differ by about the batch size: only the number of keys matters. A queue costs one stored "
      "vector per key, a batch one encoder pass with gradients per document.")

# %% [markdown]
# :::{admonition} Exercise 2: make a label rarer
# Take the most frequent tail label of the disaster corpus and keep it on only a quarter of its
# training documents (remove the label from the others). Predict, with the formula, how often its
# (anchor, label) pairs lack a positive at B = 32 with and without the queue, before and after.
# Check one of the four numbers with `analysis.lack_of_positives`.
# :::

# %% tags=["hide-cell"]
# Solution 2: thinning one label; the formula predicts, the simulation checks.
name = datasets[0]
y2, g2 = labels[name].copy(), label_groups[name]
tail_labels = np.flatnonzero(g2 == "tail")
c = tail_labels[np.argmax(y2[:, tail_labels].sum(axis=0))]
carriers = np.flatnonzero(y2[:, c])
drop = np.random.default_rng(seed).choice(carriers, size=len(carriers) - len(carriers) // 4, replace=False)
y2[drop, c] = 0
y2 = y2[y2.any(axis=1)]                        # documents left without a label leave the training set
only_c = np.array(["other"] * y2.shape[1], dtype=object)
only_c[c] = "label c"
before_c = np.array(["other"] * labels[name].shape[1], dtype=object)
before_c[c] = "label c"
solution2 = pd.DataFrame({
    (when, k): expected_pairs_without_positive(yy, gg, 32, k)["label c"]
    for when, yy, gg in (("before", labels[name], before_c), ("after", y2, only_c)) for k in queue_sizes
}, index=["pairs of label c without a positive"]).T
display(solution2.style.format("{:.1%}"))
# label c is on about a third of a pair per batch: many draws are needed for a precise simulated share
check = analysis.lack_of_positives(y2, [32], [0], n_draws=3000, seed=seed, groups=only_c)
simulated = check.set_index("group").loc["label c", "pairs_without_positive"]
print(f"label {c}: {len(carriers)} documents before, {len(carriers) // 4} after; at B = 32 without a queue the "
      f"formula predicts {solution2.loc[('after', 0)].item():.1%} and 3,000 simulated batches give {simulated:.1%}")

# %% [markdown]
# :::{admonition} Exercise 3: does the queue's age matter?
# :class: dropdown
# The counts above draw the queue at random from the training set. In training, the queue holds the
# previous $K / B$ batches, which are random draws too when the data loader shuffles. Would the
# count change if the loader sorted documents by length (as length-bucketed batching does within
# a bucket)?
#
# **Answer.** Only if length and labels are related. Bucketing puts documents of similar length in
# the same batch; if some label's documents are all short, its documents meet each other more
# often than at random, and its pairs lack positives less often, at the price of batches that are
# less representative of the other labels. The formula assumes independent draws and would no
# longer apply exactly.
# :::

# %% [markdown]
# ## What we saw
#
# - An anchor can lack positives as a whole (L_Base skips it) or label by label (its rare label gets
#   no attraction while its frequent label does); the second is far more common and is invisible to
#   L_Base.
# - The chance that a label's pair lacks a positive is a hypergeometric probability of its frequency
#   and the number of keys; the simulation and the formula agree, so the problem is set by the label
#   distribution, not by the model.
# - Larger batches help the head at once and the tail slowly. A queue adds keys at the cost of a
#   stored vector each, and 512 of them do more than any affordable batch.
# - Prototypes give every (anchor, label) pair a positive by construction: the queue shrinks the
#   problem, prototypes remove it. What those positives do to the balance of attraction and
#   repulsion is the subject of chapter 3.

# %% tags=["hide-input"]
lines = []
for name, row in many.drop(index=["disaster", "foldoc"], errors="ignore").iterrows():
    lines.append(
        f"- On **{name}** ({int(row['labels'])} labels, {row['labels per anchor']:.1f} per anchor), L_Base keeps "
        f"{row['anchors kept by L_Base']:.0%} of the anchors at B = {b} while "
        f"{row['tail pairs without positive'] * row['of which silent']:.0%} of the tail pairs are silent; the queue of "
        f"{queue} leaves {row[f'with a queue of {queue}']:.0%} of its tail pairs without a document positive, so "
        + ("the prototypes carry most of the tail's attraction." if row[f"with a queue of {queue}"] > 0.5 else
           "real documents carry most of the tail's attraction once the queue is there."))
if lines:
    display(Markdown("\n".join(lines)))
