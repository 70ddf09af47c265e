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
# # Long tails in multi-label text data
#
# A multi-label corpus rarely spreads its documents evenly over its labels. A handful of *head*
# labels tag most documents, while a long *tail* of labels tags a few documents each. This is the
# setting ABALONE {cite:p}`audibert2024abalone` is designed for, and the reason is not only that a
# classifier sees few examples of a tail label. For a contrastive loss, which learns by comparing
# documents of a batch with each other, a rare label is rare *inside every batch*: its documents
# seldom meet, and when the loss compares pairs of documents, the pairs are made of frequent labels.
# Chapters 2 and 3 measure these two consequences; this chapter measures the imbalance itself, on
# the two corpora this book can read without the Hugging Face Hub: the disaster-response messages
# and the FOLDOC computing dictionary (see [the method page](../book/method.md) for the losses).
#
# You will learn
#
# - how to describe a multi-label corpus with a few numbers: labels per document, the share of
#   documents with no label, the ratio between the most and the least frequent label;
# - how the book defines **head**, **medium** and **tail** labels, once for every chapter, and
#   what share of all label occurrences each third holds;
# - why a document with a tail label usually also carries a head label, and why that matters to an
#   instance-based contrastive loss;
# - how to check whether a label distribution follows a power law, and how many test documents are
#   left to measure a tail label's F1.
#
# Head, medium and tail are defined once for the whole book: labels are sorted by their number of
# training documents and cut into thirds (`abalone_core.evaluation.metrics.frequency_groups`). Cutting the
# *labels* into thirds, rather than the label occurrences, keeps the three groups the same size,
# so that a macro-average over a group is a mean over as many labels as over any other group.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
datasets = ["disaster", "foldoc", "debtags"]  # registered dataset names (abalone_core.data)
profile = "cpu"                    # unused here: this chapter trains nothing
seed = 0

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb
from abalone_core.analysis import plots
from abalone_core.data import load_dataset
from abalone_core.evaluation.metrics import frequency_groups

env = nb.setup()
corpora = {name: load_dataset(name) for name in datasets}
{name: repr(ds) for name, ds in corpora.items()}

# %% tags=["hide-input"]
# Labels named `facet::value` (debtags) are also read by facet below.
facet_of = np.vectorize(lambda tag: tag.split("::", 1)[0])
faceted = [name for name, ds in corpora.items() if all("::" in n for n in ds.label_names)]
if "debtags" in corpora:
    deb = corpora["debtags"]
    p, counts = deb.provenance, deb.label_counts("train")
    examples = ", ".join(f"`{deb.label_names[i]}`" for i in np.argsort(-counts, kind="stable")[:3])
    display(Markdown(
        f"**debtags** holds the English descriptions of {len(deb):,d} packages of Debian "
        f"{p['codename']} ({p['component']}, {p['architecture']}) that carry a debtag, one document per distinct "
        f"description. Its labels are the {len(deb.label_names)} tags that at least {p['min_count']} packages carry, "
        f"each a `facet::value` from {len(set(facet_of(deb.label_names)))} facets; the most frequent are {examples}. "
        "Binary packages built from one source package go to the same split, since they share most of their "
        "description."))

# %% [markdown]
# ## Corpus summary
#
# One row per split: documents, labels present, mean labels per document (over all documents and
# over labelled ones only), the share of documents with no label and the mean length in words.
# The two corpora are small by the standards of the paper's datasets, but they have the shape that
# matters here: several labels per document and a skewed label distribution.

# %% tags=["hide-input"]
split_columns = {"docs": "documents", "labels_present": "labels present", "labels_per_doc": "labels per doc.",
                 "labels_per_labelled_doc": "labels per labelled doc.", "share_unlabelled": "unlabelled",
                 "words_per_doc": "words per doc."}
for name, ds in corpora.items():
    display(Markdown(f"**{name}**: {len(ds.label_names)} labels"))
    t = ds.stats()["splits"].rename(columns=split_columns)
    display(t.style.format({"documents": "{:,.0f}", "labels present": "{:.0f}", "labels per doc.": "{:.2f}",
                            "labels per labelled doc.": "{:.2f}", "unlabelled": "{:.1%}", "words per doc.": "{:.1f}"}))

# %% [markdown]
# Two columns deserve attention. The share of **unlabelled** documents is large for the disaster
# messages: many messages are not about any of the annotated needs. A supervised classifier can use
# them as all-negative examples, but a supervised contrastive loss cannot: a document without a
# label has no positive by definition, so contrastive training drops it (`Config.keep_unlabelled`).
# The **labels per labelled document** is what the contrastive losses see; the higher it is, the
# more often two documents share at least one label, and the more the Jaccard weights of L_Base
# matter.

# %% [markdown]
# ## Label frequency
#
# Each marker is a label, ranked from the most to the least frequent in the training split; the y
# axis is logarithmic. Colours give the head / medium / tail third of each label, the same colours
# in every chapter. Hover a marker to read the label's name.

# %%
summary = []
for name, ds in corpora.items():
    counts = ds.label_counts("train")
    groups = frequency_groups(counts)
    plots.label_frequency(counts, groups, ds.label_names, title=f"{name}: training documents per label").show()
    by_group = {g: int(counts[groups == g].sum()) for g in ("head", "medium", "tail")}
    total = sum(by_group.values())
    summary.append({"dataset": name, "labels": len(counts), "max count": int(counts.max()),
                    "median count": int(np.median(counts)), "min count": int(counts.min()),
                    "max / min": counts.max() / max(counts.min(), 1),
                    **{f"{g} share": v / total for g, v in by_group.items()}})
summary = pd.DataFrame(summary).set_index("dataset")

# %% [markdown]
# The table condenses each curve: the counts of the most frequent, the median and the rarest label,
# their ratio, and the share of all label occurrences (a document with three labels counts three
# times) that falls on each third of the labels.

# %% tags=["hide-input"]
display(summary.style.format({"labels": "{:d}", "max count": "{:,d}", "median count": "{:,d}", "min count": "{:,d}",
                              "max / min": "{:,.0f}", "head share": "{:.1%}", "medium share": "{:.1%}",
                              "tail share": "{:.1%}"}))
lines = []
for name, row in summary.iterrows():
    lines.append(f"- **{name}**: the most frequent label tags {row['max count']:,.0f} training documents, "
                 f"the rarest {row['min count']:,.0f} ({row['max / min']:,.0f} times fewer); the head third of "
                 f"the labels accounts for {row['head share']:.0%} of all label occurrences and the tail third "
                 f"for {row['tail share']:.1%}.")
display(Markdown("\n".join(lines)))

# %% tags=["hide-input"]
if len(summary) > 2:
    facts = [(summary["labels"].idxmax(), f"has the most labels ({summary['labels'].max():,d})"),
             (summary["tail share"].idxmin(), "gives its tail third the smallest share of the label occurrences "
                                              f"({summary['tail share'].min():.1%})"),
             (summary["max / min"].idxmax(), f"spans the widest range of counts ({summary['max / min'].max():,.0f} "
                                             "times between its most and its least frequent label)")]
    by_name = {}
    for name, fact in facts:
        by_name.setdefault(name, []).append(fact)
    display(Markdown(f"Of the {len(summary)} corpora, " + "; ".join(
        f"**{name}** " + ", ".join(said[:-1]) + (" and " if len(said) > 1 else "") + said[-1]
        for name, said in by_name.items()) + "."))

# %% [markdown]
# A third of the labels sharing a few percent of the occurrences is what "long tail" means in
# practice. Any quantity averaged over label occurrences, a loss summed over pairs of documents,
# a micro-averaged F1, is dominated by the head third. Any quantity averaged over labels, a
# macro-F1, gives the tail third the same weight as the head. The paper's main claim is about the
# second kind: ABALONE improves macro-F1 because it gives the tail labels more of the loss. Keeping
# the two kinds of averages apart is the first habit this book asks for.
#
# On the logarithmic axis the counts decay steadily over most of the ranks; exercise 1 fits a
# straight line on a log-log scale and checks the rarest labels against it. The last labels, with
# the fewest documents, are the hardest case for every method:
# too rare for a classifier to learn a good decision boundary, and too rare to appear twice in a
# batch of a contrastive loss.

# %% tags=["hide-input"]
# Faceted labels: which facets make the head and which the tail.
for name in faceted:
    counts = corpora[name].label_counts("train")
    t = pd.DataFrame({"facet": facet_of(corpora[name].label_names), "group": frequency_groups(counts),
                      "occurrences": counts})
    by_facet = pd.crosstab(t["facet"], t["group"])[["head", "medium", "tail"]]
    head = t[t["group"] == "head"].groupby("facet")["occurrences"].sum()
    head = (head / head.sum()).nlargest(3)
    tail = by_facet["tail"].nlargest(3)
    display(Markdown(
        f"On **{name}** the thirds are made of different facets. The facets "
        f"{', '.join(f'`{f}` ({v:.0%})' for f, v in head.items())} hold {head.sum():.0%} of the head third's "
        "occurrences, while "
        f"{tail.sum()} of the {int(by_facet['tail'].sum())} tail labels come from "
        f"{', '.join(f'`{f}` ({v})' for f, v in tail.items())}. Labels per facet and third, the "
        f"{min(12, len(by_facet))} facets with the most labels:"))
    display(by_facet.assign(labels=by_facet.sum(axis=1)).nlargest(12, "labels"))

# %% [markdown]
# ## Labels per document
#
# Bars give the share of each split's documents carrying 0, 1, 2, ... labels. Documents without any
# label cannot be anchors of a supervised contrastive loss: contrastive training drops them
# (`Config.keep_unlabelled`), while the supervised baselines keep them as all-negative examples.

# %%
for name, ds in corpora.items():
    split_labels = {s: ds.split(s).labels for s in ("train", "validation", "test")}
    fig = plots.labels_per_document(split_labels, title=f"{name}: labels per document")
    fig.update_yaxes(tickformat=".0%")
    fig.show()

# %% [markdown]
# The three splits have similar shapes, as a random split should give; where they differ (on the
# disaster messages the test split has fewer unlabelled documents and fewer labels per labelled
# document than the training split, see the summary table), scores on the test split are not
# directly comparable with the training loss's view of the data. The number of labels per document matters for L_MSC in a precise way: an anchor with
# $|y_i|$ labels gives each of them $1/|y_i|$ of its attraction. A document with many labels thus
# spreads its pull thin, and a tail label that usually appears on documents with many labels gets a
# small share of each (chapter 3 measures it).

# %% tags=["hide-input"]
# The share 1/|y_i| of a document's attraction that each of its labels gets under L_MSC, averaged over
# the (document, label) pairs of a group.
lines = []
for name, ds in corpora.items():
    y = ds.split("train").labels
    y = y[y.any(axis=1)]
    groups = frequency_groups(y.sum(axis=0))
    share = {g: float((y[:, groups == g].sum(axis=1) / y.sum(axis=1)).sum() / y[:, groups == g].sum())
             for g in ("head", "tail")}
    with_tail = y[:, groups == "tail"].any(axis=1)
    lines.append(f"- **{name}**: a labelled training document with a tail label carries "
                 f"{y[with_tail].sum(axis=1).mean():.1f} labels on average, against {y.sum(axis=1).mean():.1f} over all "
                 f"labelled documents; under L_MSC a tail label gets on average {share['tail']:.0%} of its document's "
                 f"attraction, a head label {share['head']:.0%}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Do tail labels travel alone?
#
# A cell of the heatmap is the share of the documents carrying a tail label (column) that also
# carry a head label (row):
#
# $$ P(h \mid t) = \frac{|\{ i : h \in y_i,\ t \in y_i \}|}{|\{ i : t \in y_i \}|}. $$
#
# Dark columns are tail labels that almost always come with a head label. In an instance-based
# contrastive loss such a document is pulled towards the head cluster far more often than towards
# the few other documents of its tail label: every batch holds several documents of the head label
# and, most of the time, none of the tail label.

# %%
most = 30  # labels per axis at most, beyond which the names cannot be read


def shown(counts, members, spread):
    """Indices of a group's labels to draw, by decreasing count: all of them when there are at most
    `most`, else the `most` most frequent or (`spread`) `most` spread evenly over the group's ranks."""
    idx = np.flatnonzero(members)
    idx = idx[np.lexsort((idx, -counts[idx]))]
    if len(idx) <= most:
        return idx
    return idx[np.linspace(0, len(idx) - 1, most).round().astype(int)] if spread else idx[:most]


for name, ds in corpora.items():
    train = ds.split("train")
    counts = train.labels.sum(axis=0)
    groups = frequency_groups(counts)
    # rows: the head labels a tail label is most likely to meet; columns: the whole range of the tail
    keep = np.concatenate([shown(counts, groups == "head", spread=False), shown(counts, groups == "tail", spread=True)])
    fig = plots.cooccurrence_heatmap(train.labels[:, keep], groups[keep], np.asarray(ds.label_names)[keep],
                                     rows="head", cols="tail",
                                     title=f"{name}: P(head label | tail label), training split")
    fig.update_traces(colorbar_title_text="share of the tail label's documents", colorbar_title_side="right")
    fig.update_xaxes(dtick=1)                             # every name, none skipped
    fig.update_yaxes(dtick=1)
    fig.update_layout(height=420 + 12 * int((groups[keep] == "head").sum()))
    if len(keep) < (groups != "medium").sum():
        display(Markdown(f"On **{name}** the map shows the {(groups[keep] == 'head').sum()} most frequent of its "
                         f"{(groups == 'head').sum()} head labels (rows) and {(groups[keep] == 'tail').sum()} of its "
                         f"{(groups == 'tail').sum()} tail labels spread evenly from the most to the least frequent "
                         "(columns); the table below counts all of them."))
    fig.show()

# %%
rows = []
for name, ds in corpora.items():
    y = ds.split("train").labels
    groups = frequency_groups(y.sum(axis=0))
    tail_docs = y[:, groups == "tail"].any(axis=1)
    with_head = y[:, groups == "head"].any(axis=1)
    rows.append({"dataset": name, "documents with a tail label": int(tail_docs.sum()),
                 "share with a head label too": float(with_head[tail_docs].mean())})
travel = pd.DataFrame(rows).set_index("dataset")
travel.style.format({"documents with a tail label": "{:,d}", "share with a head label too": "{:.1%}"})

# %% tags=["hide-input"]
display(Markdown(" ".join(
    f"On **{name}**, {row['share with a head label too']:.0%} of the {int(row['documents with a tail label']):,d} training "
    f"documents with a tail label also carry a head label." for name, row in travel.iterrows())))

# %% [markdown]
# The two corpora differ sharply here, and the difference follows from the summary table: disaster
# messages carry several labels each, FOLDOC entries mostly one. Both situations hurt a tail label,
# in two different ways that the next two chapters separate. A tail label that travels alone (often
# the case on FOLDOC) gives its document nothing to share with the batch: the anchor has no positive
# at all and L_Base drops it, the *lack of positives* of chapter 2. A tail label that travels with a
# head label (almost always the case on the disaster messages) keeps its document in the loss, but
# for the wrong reason.
#
# That second case is the mechanism behind the *attraction imbalance* of the paper. Under L_Base,
# an anchor's pull towards another document is its Jaccard overlap, and overlaps come from shared
# labels. A document carrying a head label and a tail label shares the head label with many
# documents of the batch and the tail label with almost none, so nearly all of its attraction goes
# through the head label, and its representation is shaped by the head cluster. The tail label is
# not forgotten because the document is absent; it is forgotten because the document is busy being
# a head document. L_MSC answers this by iterating over the labels of each anchor, giving each one
# the same share of the attraction, and by providing a prototype for the tail label to be pulled
# towards.

# %% tags=["hide-input"]
# Corpora beyond the two above: which of the two cases, and for faceted labels, which facets a tail label travels with.
for name, row in travel.drop(index=["disaster", "foldoc"], errors="ignore").iterrows():
    share = row["share with a head label too"]
    like = travel["share with a head label too"].drop(index=name).sub(share).abs().idxmin() if len(travel) > 1 else None
    display(Markdown(
        f"The tail labels of **{name}** mostly " + ("travel with a head label" if share >= 0.5 else "travel alone")
        + (f", closest to **{like}** on this count." if like else ".")))
for name in faceted:
    ds = corpora[name]
    y = ds.split("train").labels
    groups = frequency_groups(y.sum(axis=0))
    facets = facet_of(ds.label_names)
    # one column per (group, facet): does the document carry a label of that facet in that group
    cols = [(g, f) for g in ("head", "tail") for f in sorted(set(facets[groups == g]))]
    yf = np.stack([y[:, (groups == g) & (facets == f)].any(axis=1) for g, f in cols], axis=1).astype(np.int64)
    fig = plots.cooccurrence_heatmap(yf, [g for g, _ in cols], [f for _, f in cols], rows="head", cols="tail",
                                     title=f"{name}: P(head label of a facet | tail label of a facet), training split")
    fig.update_traces(colorbar_title_text="share of the documents with a tail label of the facet",
                      colorbar_title_side="right")
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(dtick=1)
    fig.update_layout(height=420 + 12 * sum(g == "head" for g, _ in cols), xaxis_title="facet of the tail label",
                      yaxis_title="facet of the head label")
    fig.show()
    tail_docs = y[:, groups == "tail"].any(axis=1)
    yt = y[tail_docs]
    head_facet = pd.Series({f: yf[tail_docs, i].mean() for i, (g, f) in enumerate(cols) if g == "head"}).nlargest(3)
    other = np.array([bool(set(facets[(groups == "head") & (d == 1)]) - set(facets[(groups == "tail") & (d == 1)]))
                      for d in yt])
    top = np.flatnonzero(groups == "head")[np.argmax(yt[:, groups == "head"].sum(axis=0))]
    display(Markdown(
        f"A cell is the share of the {name} documents carrying a tail label of the column's facet that also carry a "
        f"head label of the row's facet. Of the {len(yt):,d} training documents with a tail label, {other.mean():.0%} "
        "carry a head label of a facet that none of their tail labels belongs to, and the facets they meet most are "
        + ", ".join(f"`{f}` ({v:.0%} of them)" for f, v in head_facet.items())
        + f"; the single most frequent companion is `{ds.label_names[top]}` ({yt[:, top].mean():.0%})."
        + (" Most such documents are thus pulled towards a head cluster by a label that describes another side of "
           "them than their tail label does." if other.mean() >= 0.5 else "")))

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: a power law?
# Fit a straight line to log(count) against log(rank) for each dataset's training labels. The slope
# is the exponent of a Zipf-like law. Which dataset has the steeper tail? Does the fit hold for the
# last ten labels?
# :::

# %% tags=["hide-cell"]
# Solution 1: least-squares fit on the log-log rank plot.
fits = {}
for name, ds in corpora.items():
    counts = np.sort(ds.label_counts("train"))[::-1].astype(float)
    counts = counts[counts > 0]
    rank = np.arange(1, len(counts) + 1)
    slope, intercept = np.polyfit(np.log(rank), np.log(counts), 1)
    predicted_last = np.exp(intercept) * rank[-10:] ** slope
    fits[name] = {"slope": slope, "last ten: observed / fitted (mean)": float((counts[-10:] / predicted_last).mean())}
solution1 = pd.DataFrame(fits).T
display(solution1.style.format("{:.2f}"))
steeper = solution1["slope"].idxmin()
print(f"{steeper} has the steeper decay (slope {solution1.loc[steeper, 'slope']:.2f}); a ratio below 1 for the last "
      "ten labels means the rarest labels are rarer than the straight line predicts.")

# %% [markdown]
# :::{admonition} Exercise 2: how many test documents per tail label?
# The book reports macro-F1 inside the tail third of the labels. Count, for each dataset, how many
# **test** documents carry each tail label (median and minimum). What does a count of 2 or 3 mean
# for the precision of that label's F1?
# :::

# %% tags=["hide-cell"]
# Solution 2: test support of the tail labels.
support = {}
for name, ds in corpora.items():
    groups = frequency_groups(ds.label_counts("train"))
    test_counts = ds.split("test").labels.sum(axis=0)[groups == "tail"]
    support[name] = {"tail labels": int((groups == "tail").sum()), "median test documents": int(np.median(test_counts)),
                     "fewest test documents": int(test_counts.min()),
                     "tail labels with < 5 test documents": int((test_counts < 5).sum())}
solution2 = pd.DataFrame(support).T
display(solution2)
print("With 2 or 3 positive test documents a label's F1 moves in large steps (one document more or less found "
      "changes recall by a third or a half), so the tail F1 of one seed is noisy; the book compares seeds.")

# %% [markdown]
# :::{admonition} Exercise 3: thirds of labels or thirds of occurrences?
# :class: dropdown
# Suppose the groups were cut so that each held a third of the label *occurrences* instead of a third
# of the labels. How many labels would the head group hold?
#
# **Answer.** Very few: the summary table shows that the head third of the labels already holds most
# occurrences, so a third of the occurrences is reached after the first few labels (the most frequent
# disaster label alone tags thousands of documents). The tail
# group would then hold most labels, and "tail F1" would mean almost "macro-F1". Cutting labels into
# thirds keeps the three groups comparable in size.
# :::

# %% [markdown]
# ## What we saw
#
# - Both corpora are long-tailed: the head third of the labels holds most label occurrences and the
#   tail third a few percent, with a ratio of about a hundred between the most and the least
#   frequent label.
# - Averages over occurrences (losses over pairs, micro-F1) follow the head; averages over labels
#   (macro-F1, the paper's main metric) give the tail equal weight.
# - Documents without labels are dropped by contrastive training; labelled documents carry several
#   labels, and L_MSC splits an anchor's attraction among them.
# - A tail label either travels with a head label (nearly always on the disaster messages), and an
#   instance-based loss then pulls its documents towards the head cluster (the attraction imbalance
#   of chapter 3), or travels alone (often on FOLDOC), and its documents then often have no positive
#   at all (the lack of positives of chapter 2).

# %% tags=["hide-input"]
lines = []
for name, row in summary.drop(index=["disaster", "foldoc"], errors="ignore").iterrows():
    share = travel.loc[name, "share with a head label too"]
    lines.append(
        f"- **{name}** ({int(row['labels']):,d} labels) is long-tailed too: its tail third holds {row['tail share']:.1%} of the "
        f"label occurrences, with a ratio of {row['max / min']:,.0f} between its most and its least frequent label; "
        f"{share:.0%} of its documents with a tail label also carry a head label, so "
        + ("they mostly stay in an instance-based loss through that head label, the setting of the attraction "
           "imbalance of chapter 3." if share >= 0.5 else
           "they often share no label with the rest of a batch, the lack of positives of chapter 2."))
if lines:
    display(Markdown("\n".join(lines)))
