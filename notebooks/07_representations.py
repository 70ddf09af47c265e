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
# Linear evaluation scores a representation through a classifier. The paper also measures
# the geometry directly (Table 4, Figure 2): test documents are grouped by their exact label
# combination (one class per distinct combination), the most frequent combinations covering
# a chosen share of them are kept, and two clustering scores are computed on the
# representations with the projection head discarded:
#
# - **silhouette** (Rousseeuw 1987), here with the cosine distance: higher is better, in [−1, 1];
# - **Davies–Bouldin** (Davies and Bouldin 1979), Euclidean on L2-normalised vectors so that
#   both scores see the same geometry: lower is better.
#
# Three encoders are compared: the pre-trained backbone (`frozen`, the L_MLM row), the BCE
# baseline and L_MSC. UMAP maps (McInnes et al. 2018) then show the test documents in two
# dimensions.

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

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from abalone_core import analysis, plots
from abalone_core import notebook as nb

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
runs = {o: nb.row_name(o) for o in ("frozen", "bce", "msc")}  # objective -> the paper's name
for o in runs:
    nb.run_or_load(config(o))  # reuses chapters 4 and 6 when they ran
emb = {o: nb.run_embeddings(root / o, split="test") for o in runs}
first = emb["frozen"]
print(f"{first['x'].shape[0]} test documents, {first['x'].shape[1]}-dimensional representations")

# %% [markdown]
# ## Clustering scores at 50 % of the label combinations (Table 4)

# %%
table4 = pd.concat([analysis.clustering_scores(e["x"], e["y"], shares=[0.5], metric="cosine").assign(run=runs[o])
                    for o, e in emb.items()]).set_index("run")
table4[["n_docs", "n_classes", "silhouette", "davies_bouldin"]]

# %%
nb.paper_table("clustering").set_index("loss").drop(columns="objective")

# %% [markdown]
# ## Against the share of combinations kept (Figure 2)
#
# Keeping only the most frequent combinations leaves a few large classes; adding rarer
# combinations adds many small, overlapping classes.

# %%
parts = []
for o, e in emb.items():
    for share in shares:
        try:
            parts.append(analysis.clustering_scores(e["x"], e["y"], shares=[share], metric="cosine").assign(loss=runs[o]))
        except ValueError as err:  # e.g. as many combinations as documents on a small test split
            print(f"{runs[o]}, share {share}: skipped ({err})")
curve = pd.concat(parts)
plots.clustering_curves(curve, by="loss").show()

# %%
best = table4["silhouette"].idxmax()
display(Markdown(
    f"At 50 % of the combinations the highest silhouette is {table4.loc[best, 'silhouette']:.3f} ({best}) and the "
    f"lowest Davies-Bouldin index is {table4['davies_bouldin'].min():.2f} ({table4['davies_bouldin'].idxmin()})."))

# %% [markdown]
# ## UMAP maps
#
# Each point is a test document, coloured by the frequency group of its *rarest* label
# (`none`: no label). Hover a point to read its labels and the start of its text. Pan and
# zoom with the mouse; click a legend entry to hide a group.

# %%
names = np.asarray(first["label_names"])
colour = nb.label_group_of_docs(first["y"], first["train_counts"])
hover = [", ".join(names[row.astype(bool)]) + " | " + text[:80] for row, text in zip(first["y"], first["texts"])]
for o, e in emb.items():
    xy = analysis.project_umap(e["x"], n_neighbors=umap_neighbors, seed=seed)
    plots.umap_scatter(xy, colour, hover=hover, title=f"{runs[o]}: test documents").show()
