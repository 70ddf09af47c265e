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
# # What the representations look like
#
# Linear evaluation scores a representation through a classifier: it says how well the labels can
# be read off the vectors, not how the vectors are arranged. The paper
# {cite:p}`audibert2024abalone` also measures the arrangement directly (its Table 4 and Figure 2).
# The claim behind it is geometric. A supervised contrastive loss pulls documents with shared
# labels together and pushes the others apart, so documents with the same labels should form
# tighter, better separated groups than under a pre-trained encoder or an encoder trained with
# BCE. This chapter makes that claim measurable. It also shows why the two-dimensional maps that
# usually illustrate it, UMAP projections {cite:p}`mcinnes2018umap`, can support it only weakly.
#
# You will learn
#
# - how a multi-label test set becomes a clustering problem: one class per distinct label
#   combination, keeping the most frequent combinations, and why the share kept changes the answer;
# - what the silhouette {cite:p}`rousseeuw1987silhouette` and the Davies–Bouldin index
#   {cite:p}`davies1979cluster` compute, by hand, and why they can disagree;
# - how the pre-trained encoder (L_MLM), L_Base, L_MSC and BCE compare on both scores, on
#   converged encoders shipped with the book and on the grid of several seeds they come from;
# - what a UMAP map keeps (local neighbourhoods) and what it does not (distances between groups,
#   sizes, densities, orientation), and how to draw maps of several encoders that can be compared:
#   the same documents, a few chosen labels, one axis range, the maps rotated onto each other.
#
# The encoders of this chapter are not the demonstration runs of chapters 4 and 6 (a few dozen
# optimiser steps on a subset), whose geometry says little. They come from the comparison grid
# of chapter 8, `results/encoder_depth`: MiniLM with its top transformer layer trained on the
# whole disaster training split until the convergence rule stopped it (seed 0 of L_Base, L_MSC
# and BCE). The trained part of each, one layer, the pooling and the projection head, ships with
# the book in float16 (a few MB each, `results/encoder_depth/encoders/`, with its provenance);
# the chapter puts it back on top of the pre-trained MiniLM and embeds the whole test split. The
# pre-trained MiniLM itself is L_MLM. Where those files are missing (another dataset, a partial
# checkout), the chapter falls back to the demonstration runs and says so.

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
shares = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # Figure 2 x axis
umap_neighbors = 15
runs_dir = None        # None: runs/book-<profile> in the checkout (shared by chapters 4 to 8)
results_dir = None     # None: results/ in the checkout (the committed grids)
grid = "encoder_depth"  # the committed grid whose runs are the evidence of this chapter
shipped = True         # the converged encoders shipped in results/<grid>/encoders/; False: demonstration runs
map_documents = 1500   # labelled test documents drawn (seed 0) for the UMAP maps; None: all

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import notebook as nb

env = nb.setup()  # first: quiet progress bars and warnings for the imports below

from abalone_core import analysis
from abalone_core.analysis import maps, plots
from abalone_core.data.run_data import load_run_dataset
from abalone_core.evaluation.metrics import example_labels
from abalone_core.evaluation.per_label import support
from abalone_core.report import findings
from abalone_core.training.config import Config

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
files = nb.shipped_encoders(grid, dataset=config("msc").dataset, results=results_dir) if shipped else {}
converged = {"base", "msc", "bce"} <= set(files)
if converged:
    runs = {o: nb.row_name(o) for o in ("frozen", "base", "msc", "bce")}  # objective -> the paper's name
    # the three trained encoders, and under "frozen" the pre-trained backbone they all start from
    emb = nb.shipped_embeddings({o: files[o] for o in ("base", "msc", "bce")}, pretrained="frozen")
    data_config = Config.from_dict(emb["msc"]["provenance"]["config"])
else:
    print("No converged encoders shipped for this dataset" + ("" if shipped else " (shipped=False)")
          + ": the demonstration runs of chapters 4 and 6 stand in; their geometry is a check of the code only.")
    runs = {o: nb.row_name(o) for o in ("frozen", "base", "msc", "bce")}
    for o in runs:
        nb.run_or_load(config(o))  # reuses chapters 4 and 6 when they ran with the same settings
    emb = {o: nb.run_embeddings(root / o, split="test") for o in runs}
    data_config = config("msc")
first = emb["frozen"]
print(f"{first['x'].shape[0]} test documents, {first['x'].shape[1]}-dimensional representations "
      f"(the projection head discarded)")

# %% [markdown]
# Where each trained encoder comes from: its run of the grid, the step the convergence rule
# stopped it at, the checkpoint the run selected, the commit of the code that trained it, and
# the digest the chapter checked before loading it.

# %% tags=["hide-input"]
if converged:
    chosen_by = {"best_val_loss": "lowest validation loss", None: "best validation micro-F1"}
    source = pd.DataFrame([{
        "encoder": runs[o], "seed": m["seed"], "stopped at step": m["steps"], "converged": m["converged"],
        "weights kept": chosen_by.get(m["selected_candidate"], m["selected_candidate"]),
        "MB": round(files[o].stat().st_size / 2**20, 1),
        "code": (m["record"].get("git_revision") or "")[:8], "sha256": m["sha256"][:8],
    } for o in ("base", "msc", "bce") for m in [emb[o]["provenance"]]]).set_index("encoder")
    display(Markdown(f"Runs of `results/{grid}` (one trained layer, disaster); files in `results/{grid}/encoders/`"))
    display(source)
else:
    display(Markdown("Demonstration runs of chapters 4 and 6 (the `cpu` profile), not converged encoders."))

# %% [markdown]
# ## From labels to clusters
#
# A clustering score needs one class per document, and a multi-label document has several labels.
# The paper's answer is to take the **exact label combination** as the class. A message labelled
# {aid_related, food, water} belongs to class "aid_related + food + water", a different class from
# {aid_related, food}. This is strict: two documents that share two labels out of three count as
# different classes, just as two documents with nothing in common do. It is also the only choice
# that does not require deciding which label matters most.
#
# Most combinations are rare, often a single document, and a class of one document has no
# cohesion to measure. So the combinations are ranked by their number of documents and only the
# most frequent **share** of them is kept, with their documents (`analysis.combination_classes`).
# Documents without any label are never a class. At a small share a few large classes remain,
# mostly made of head labels. As the share grows, many small classes enter that overlap
# heavily with the large ones (they share most of their labels), and every score gets worse. The
# curve against the share (the paper's Figure 2) shows how fast the geometry degrades from
# frequent to rare combinations, which is the long tail again, seen from the side of the
# representation.

# %%
test_y = first["y"]
rows = []
for share in (0.1, 0.5, 1.0):
    mask, classes = analysis.combination_classes(test_y, share)
    sizes = np.bincount(classes)
    rows.append({"share kept": share, "classes": int(sizes.size), "documents kept": int(mask.sum()),
                 "largest class": int(sizes.max()), "classes of one document": int((sizes == 1).sum())})
display(Markdown(f"{len(np.unique(test_y[test_y.any(axis=1)], axis=0))} distinct label combinations among the "
                 f"{int(test_y.any(axis=1).sum())} labelled test documents"))
pd.DataFrame(rows).set_index("share kept")

# %% [markdown]
# ## Two scores of a clustering
#
# The **silhouette** of a document $i$ compares how far it is from its own class and from the
# nearest other class. With $d$ the cosine distance, $a(i)$ the mean distance from $i$ to the
# other documents of its class and $b(i)$ the smallest mean distance from $i$ to the documents
# of another class,
#
# $$ s(i) = \frac{b(i) - a(i)}{\max\{a(i), b(i)\}} \in [-1, 1], $$
#
# and the silhouette of the clustering is the mean of $s(i)$ over the documents kept. It is 1 when
# every document is much closer to its own class than to any other, 0 when it sits between
# classes, and negative when another class is closer than its own. Negative silhouettes are
# normal here: label combinations that share labels *should* be close, and a message labelled
# {aid_related, food} has every reason to sit near {aid_related, food, water}.
#
# The **Davies–Bouldin index** looks at classes instead of documents. Each class $k$ has a centroid
# $\mu_k$ and a spread $S_k$, the mean distance of its documents to the centroid. For two classes
# the ratio $R_{kl} = (S_k + S_l) / \lVert \mu_k - \mu_l \rVert$ is large when they are wide and
# close, and the index averages over classes the worst ratio of each,
#
# $$ \text{DB} = \frac{1}{K} \sum_k \max_{l \neq k} R_{kl}, $$
#
# so lower is better. It is Euclidean by definition; on L2-normalised vectors, as here, Euclidean
# and cosine distances order pairs the same way, so both scores see the same geometry. The two
# can disagree. The silhouette averages over documents, so large classes dominate it; DB averages
# over classes, so many small classes dominate it, and one bad neighbour per class is enough to
# raise it.
#
# The silhouette is simple enough to compute by hand. The cell below does it for the L_MSC
# encoder at half of the combinations and compares it with scikit-learn's value, which
# `analysis.clustering_scores` uses. One matrix product gives every document's summed distance
# to every class at once, so the loop over documents of the definition becomes a few array
# operations.

# %%
from sklearn.metrics import pairwise_distances

mask, classes = analysis.combination_classes(emb["msc"]["y"], 0.5)
dist = pairwise_distances(emb["msc"]["x"][mask], metric="cosine")   # (n, n)
onehot = np.eye(classes.max() + 1)[classes]                           # (n, K): document i is in class classes[i]
size = onehot.sum(axis=0)                                             # (K,) documents per class
to_class = dist @ onehot                                              # (n, K) summed distance to each class
own = size[classes]
a = to_class[np.arange(len(classes)), classes] / np.maximum(own - 1, 1)   # the document itself is at distance 0
mean_to = to_class / size                                             # (n, K) mean distance to each class
mean_to[np.arange(len(classes)), classes] = np.inf                    # b(i) looks at the other classes only
b = mean_to.min(axis=1)
s = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)                 # a class of one document: s(i) = 0
by_hand = float(s.mean())
library = analysis.clustering_scores(emb["msc"]["x"], emb["msc"]["y"], shares=[0.5])["silhouette"].item()
print(f"silhouette by hand {by_hand:.4f}, scikit-learn {library:.4f}")

# %% [markdown]
# ## The four encoders at half of the combinations (Table 4)
#
# The four encoders, scored on the same test documents at a share of 0.5, beside the paper's
# values on RCV1. Only the direction of the differences can be compared with the paper: another
# dataset, another backbone, one trained layer instead of the whole of RoBERTa. One seed of each
# is one draw; the grid's seeds, further down, say whether a difference is more than that.

# %%
table4 = pd.concat([analysis.clustering_scores(e["x"], e["y"], shares=[0.5], metric="cosine").assign(run=runs[o])
                    for o, e in emb.items()]).set_index("run")
display(Markdown("**Converged encoders** (seed 0, one trained layer), whole test split, share 0.5" if converged
                 else "**Demonstration** (cpu profile), test split of the subset, share 0.5"))
(table4[["n_docs", "n_classes", "silhouette", "davies_bouldin"]].round(3).rename_axis("encoder")
 .rename(columns={"n_docs": "documents", "n_classes": "label combinations", "davies_bouldin": "Davies-Bouldin"}))

# %%
nb.paper_table("clustering").set_index("loss").drop(columns="objective")

# %% [markdown]
# ## Against the share of combinations kept (Figure 2)

# %%
parts = []
for o, e in emb.items():
    for share in shares:
        try:
            parts.append(analysis.clustering_scores(e["x"], e["y"], shares=[share], metric="cosine").assign(loss=runs[o]))
        except ValueError as err:  # e.g. as many combinations as documents on a small test split
            print(f"{runs[o]}, share {share}: skipped ({err})")
curve = pd.concat(parts)
fig = plots.color_by_loss(maps.clustering_curves(curve, by="loss", title=(
    "Converged encoders (seed 0)" if converged else "Demonstration") + ": clustering quality against the share kept"))
fig.update_yaxes(title_text="silhouette (cosine)", col=1).update_yaxes(title_text="Davies-Bouldin index", col=2).show()

# %% tags=["hide-input"]
best = table4["silhouette"].idxmax()
display(Markdown(
    f"For these {'converged encoders (seed 0)' if converged else 'demonstration encoders'}, at 50 % of the "
    f"combinations, the highest silhouette is {table4.loc[best, 'silhouette']:.3f} ({best}) and the lowest "
    f"Davies–Bouldin index {table4['davies_bouldin'].min():.2f} ({table4['davies_bouldin'].idxmin()}); "
    + ("the two scores agree on the best encoder." if best == table4['davies_bouldin'].idxmin()
       else "the two scores disagree on the best encoder.")
    + (" This is one seed of each; the grid below says which differences its seeds support." if converged
       else " With a few dozen optimiser steps this is a check of the pipeline, not evidence about the losses.")))

# %% [markdown]
# ## The evidence: the grid's seeds
#
# Every run of the comparison grid that has an encoder records the silhouette and
# Davies–Bouldin index of its test representations at half of the combinations, on the whole
# test split. The table gives, for each number of trained layers, the mean over seeds ± the
# half-width of its 95 % Student-t interval, with the number of seeds in brackets (chapter 8
# explains the interval), and how many of those runs converged. TF-IDF has no encoder and no
# row; BCE's encoder is scored the same way, its classifier discarded.

# %% tags=["hide-input", "full-width"]
records = findings.grid_records(nb.results_dir(results_dir), grids=(grid,))
geometry = ("silhouette", "davies_bouldin")
claims = findings.depth_claims(records) if not records.empty else pd.DataFrame()
paragraphs = []
for d in (records["dataset"].unique() if not records.empty else []):
    table = findings.depth_table(records, d, metrics=geometry, rows=("frozen", "base", "msc", "bce"))
    display(Markdown(f"**{d}**, test split, share 0.5 (mean ± 95 % half-width (seeds))"))
    display(table)
    for k in sorted(claims.loc[claims["dataset"] == d, "train_layers"].astype(str).unique(),
                    key=lambda k: (k != "all", k)):
        paragraphs.append(findings.finding_paragraph(claims, d, k, metrics=geometry))
if records.empty:
    display(Markdown(f"No run of the grid `{grid}` is committed yet."))

# %% [markdown]
# The verdicts on L_MSC against L_Base, from the same paired seeds, under the rules of chapter 8
# (at least three converged seeds with a spread; Holm's correction over the claims of each
# dataset and depth). "Open" means these seeds cannot tell; beside it stands the smallest
# difference they could have resolved.

# %% tags=["hide-input"]
display(Markdown("\n\n".join(paragraphs) if paragraphs else "No clustering claim can be judged yet."))

# %% [markdown]
# ## Which labels the test split holds
#
# Before looking at maps, check which labels can appear in them at all. The table counts the
# training and test documents of each label. The tail third is at the
# bottom; some tail labels have no test document, so no map of the test split can show them. The
# maps below colour one example label per frequency group. The rule that picks it
# (`metrics.example_labels`) takes, among the group's labels that have at least one test document,
# the label whose training count is closest to the median of those labels. It is a typical label
# of its group, not the best-looking one.

# %%
names = np.asarray(first["label_names"])
label_support = support(load_run_dataset(data_config)).loc[names]  # the label order of the embeddings
chosen = example_labels(label_support["train"].to_numpy(), label_support["test"].to_numpy(),
                        groups=label_support["group"].to_numpy())
label_support.sort_values("train", ascending=False).tail(12)

# %% tags=["hide-input"]
tail_support = label_support[label_support["group"] == "tail"]
display(Markdown(
    f"{int((label_support['test'] == 0).sum())} of {len(label_support)} labels have no test document "
    f"({int((tail_support['test'] == 0).sum())} of the {len(tail_support)} tail labels). Example labels: "
    + "; ".join(f"{g} **{names[c]}** ({int(label_support['train'].iloc[c])} training, "
                f"{int(label_support['test'].iloc[c])} test documents)" for g, c in chosen.items())
    + ("." if len(chosen) == 3 else "; a group without any test document has no example.")))

# %% [markdown]
# ## What UMAP does, and what it does not show
#
# UMAP builds a graph of each document's nearest neighbours in the representation (15 by default,
# cosine distance), turns it into weighted edges that say how strongly two documents are
# neighbours, and then places the documents in two dimensions so that the same edges are strong
# there too. It is tuned to keep **local neighbourhoods**: documents that are near each other in
# the representation's hundreds of dimensions tend to stay near each other on the map. That is what a map can show, and the
# question it answers well is "do documents carrying the same label land in the same
# neighbourhood?".
#
# Almost everything else on a map is unreliable {cite:p}`chari2023specious`. The distance between
# two groups on the map says little about their distance in the representation: UMAP has no
# force that keeps far things at the right distance. The size and density of a group are
# distorted on purpose; `min_dist` decides how tightly points may pack. The orientation is
# arbitrary: a map of the same documents may come out rotated or mirrored from one run, or one
# encoder, to the next. This last point matters when maps of several encoders are laid side by
# side, because their axes have no common meaning. Two things help. The same documents are placed
# in every panel, on one fixed axis range, and each map is rotated (or reflected) onto the first
# by an orthogonal Procrustes fit {cite:p}`schonemann1966procrustes` (`maps.align_to`). The
# rotation removes the arbitrary orientation without changing any distance inside a map. It does
# not make the coordinates comparable: "up" in one panel is still not the same thing as "up" in
# another. Documents without labels are left out, and all labelled documents not carrying one of
# the example labels are drawn in light grey, so the eye is not drawn to a rainbow of colours.
# To keep the page light, the maps place a fixed sample of the labelled test documents (drawn
# once, with seed 0: the same documents in every panel, every example label's documents kept).

# %%
labelled_docs = np.flatnonzero(first["y"].any(axis=1))
keep = np.flatnonzero(first["y"][:, list(chosen.values())].any(axis=1))  # every document of an example label
rest = np.setdiff1d(labelled_docs, keep)
room = max(0, (map_documents or len(labelled_docs)) - len(keep))
pick = np.sort(np.concatenate([keep, np.random.default_rng(0).choice(rest, min(room, len(rest)), replace=False)]))
labelled_maps = {runs[o]: analysis.project_umap(e["x"][pick], n_neighbors=umap_neighbors, seed=seed)
                 for o, e in emb.items()}
fig = maps.umap_panels(labelled_maps, first["y"][pick], chosen=list(chosen.values()), names=names,
                        groups=label_support["group"].to_numpy(), unlabelled="hide",
                        title=("Converged encoders (seed 0)" if converged else "Demonstration")
                        + f": the same {len(pick)} test documents under each encoder (maps rotated onto the first)")
fig.show()

# %% [markdown]
# Read the map as a statement about neighbours. If the documents of the head example form one
# compact region under an encoder and are scattered under another, the first encoder puts them
# in each other's neighbourhoods and the second does not. The tail example has only a few test
# documents; whether they sit together is suggestive at best. Distances between the coloured
# groups, their shapes and where they lie on the page carry no meaning. The silhouette and
# Davies–Bouldin numbers above are the measurements; the maps are a way to look at the documents
# behind them, hover by hover.

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: how much does the share decide?
# Compute the silhouette of the four encoders at a share of 0.2 and at 1.0, and the
# number of classes and documents each share keeps. Does the order of the encoders stay the same?
# Then repeat at share 0.5 with the Euclidean distance on the raw (not normalised) vectors.
# :::

# %% tags=["hide-cell"]
# Solution 1: the silhouette at two shares and with another metric.
rows = []
for o, e in emb.items():
    for share, metric in ((0.2, "cosine"), (1.0, "cosine"), (0.5, "euclidean")):
        try:
            r = analysis.clustering_scores(e["x"], e["y"], shares=[share], metric=metric).iloc[0]
        except ValueError as err:
            print(f"{runs[o]}, share {share}: {err}")
            continue
        rows.append({"encoder": runs[o], "share": f"{share:g}", "metric": metric, "classes": int(r["n_classes"]),
                     "documents": int(r["n_docs"]), "silhouette": r["silhouette"]})
solution1 = pd.DataFrame(rows)
display(solution1.pivot_table(index="encoder", columns=["metric", "share"], values="silhouette").style.format("{:.3f}"))
display(solution1.groupby(["metric", "share"])[["classes", "documents"]].first())

# %% [markdown]
# :::{admonition} Exercise 2: change the UMAP neighbours
# Redraw the L_MSC map with 5 and with 50 neighbours, keeping the same documents, example labels
# and alignment. Which of the two maps breaks the head example into more pieces, and why does a
# small neighbourhood do that?
# :::

# %% tags=["hide-cell"]
# Solution 2: the same embedding, three neighbourhood sizes (aligned onto the 15-neighbour map).
x_msc = emb["msc"]["x"][pick]
neighbour_maps = {f"{k} neighbours": analysis.project_umap(x_msc, n_neighbors=k, seed=seed)
                  for k in (umap_neighbors, 5, 50) if k < len(x_msc)}
maps.umap_panels(neighbour_maps, first["y"][pick], chosen=list(chosen.values()), names=names,
                  groups=label_support["group"].to_numpy(), title="L_MSC with three neighbourhood sizes").show()
# What to look for: with few neighbours each document's graph only links it to its closest documents, so a
# label's documents tend to fall apart into small islands; with many neighbours the graph links wider regions,
# the islands tend to merge and local detail is lost. The silhouette of the embedding is the same in all three.

# %% [markdown]
# :::{admonition} Exercise 3: does the map keep the neighbours?
# For each encoder, take every mapped test document's 15 nearest neighbours in the
# representation (cosine) and on its UMAP map (Euclidean). What share of the representation's
# neighbours are still neighbours on the map? What share would a random map keep?
# :::

# %% tags=["hide-cell"]
# Solution 3: neighbourhood preservation, the one thing UMAP tries to keep.
from sklearn.neighbors import NearestNeighbors

k = 15


def neighbours(points, metric):
    index = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(points)
    return index.kneighbors(points, return_distance=False)[:, 1:]   # drop the document itself


kept = {}
for o, e in emb.items():
    high = neighbours(e["x"][pick], "cosine")    # the mapped documents, in the representation
    low = neighbours(labelled_maps[runs[o]], "euclidean")
    kept[runs[o]] = np.mean([len(set(a) & set(b)) / k for a, b in zip(high, low)])
kept = pd.Series(kept, name="share of neighbours kept on the map")
display(kept.to_frame().style.format("{:.1%}"))
print(f"A random map would keep about {k / (len(pick) - 1):.1%}; the maps keep between {kept.min():.0%} and "
      f"{kept.max():.0%}: " + ("most of a document's neighbours on a map are not its neighbours in the representation."
                               if kept.max() < 0.5 else "at least half of a document's neighbours are kept on every map."
                               if kept.min() >= 0.5 else "some maps keep more than half of them, others fewer."))

# %% [markdown]
# ## What we saw
#
# - A multi-label test set becomes a clustering problem by taking each distinct label combination
#   as a class and keeping the most frequent share of combinations. The share is part of the
#   answer: few large head classes at a small share, many small overlapping classes at a large one.
# - The silhouette compares each document's distance to its own class with the nearest other class
#   and averages over documents; Davies–Bouldin compares each class's spread with its worst
#   neighbour and averages over classes. Negative silhouettes are expected when classes share
#   labels, and the two scores can rank encoders differently.
# - One converged encoder per loss shows the geometry; the grid's paired seeds, with mean ± 95 %
#   interval, three converged seeds at least and Holm's correction, decide whether L_MSC's
#   representations cluster better than L_Base's. What they say, generated from the committed
#   runs, follows this list.
# - Some tail labels have no test document at all; a map or a score of the test split cannot say
#   anything about them. The example labels of the maps are chosen by a fixed rule, among
#   labels that the test split holds.
# - UMAP keeps local neighbourhoods and little else. Maps of different encoders are comparable
#   only as statements about neighbours: same documents, same example labels, one axis range, each
#   map rotated onto the first. Distances between groups, their sizes and their orientation are
#   not results.

# %% tags=["hide-input"]
display(Markdown("**The grid's verdicts on the geometry.**\n\n" + ("\n\n".join(paragraphs) if paragraphs
                 else "No clustering claim can be judged on the committed runs yet.")))
