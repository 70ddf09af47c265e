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
# # A worked example: the ABALONE loss by hand
#
# Before any training, this chapter computes the two losses the book is about on an example
# small enough to check with a pocket calculator: **L_Base**, the Jaccard-weighted supervised
# contrastive loss, and **L_MSC**, the balanced loss of ABALONE {cite:p}`audibert2024abalone`
# (Audibert, Gauffre and Amini, *Exploring Contrastive Learning for Long-Tailed Multi-Label
# Text Classification*, ECML-PKDD 2024, [arXiv 2404.08720](https://arxiv.org/abs/2404.08720)).
#
# You will learn
#
# - what a supervised contrastive loss *attracts* (its numerator) and what it *repels* (its
#   denominator), and how both can be read off a table of weights;
# - why a label carried by a single document of a batch gets no attraction from L_Base, and how
#   a memory queue and one prototype per label give it some;
# - what the per-label iteration of L_MSC does to an anchor with two labels;
# - what β does to the denominator, and in which case it would not change the gradients at all;
# - how to check every number against `abalone_core.method.losses`, the implementation the other
#   chapters train with.
#
# The chapter ends with a figure computed on a real batch of disaster-response messages, with a
# slider over β and the temperature τ, and with exercises whose solutions are hidden behind a
# toggle.

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value). The hand-worked example does not depend on them;
# they set the real batch of the last section.
dataset = "disaster"
backbone = "minilm"      # offline default; any Hub id works where the Hub is reachable
batch_size = 32          # the paper's batch size
queue_size = 96          # the paper uses 512; 96 keeps this page fast on a CPU
max_length = 64
seed = 0
device = "auto"
profile = "cpu"          # unused here: this chapter trains nothing

# %%
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display

from abalone_core.analysis import balance, plots
from abalone_core.method import losses
from abalone_core import notebook as nb
from abalone_core.analysis import worked_example as we

env = nb.setup()
pd.set_option("display.precision", 3)
ex = we.example()          # tau = 0.5, beta = 0.1
print(f"temperature tau = {ex.temperature}, beta = {ex.beta}")

# %% [markdown]
# ## The pieces of ABALONE
#
# ![ABALONE: a batch goes through the query encoder (anchors) and the momentum key encoder (keys
# for the queue); the loss sees the anchors, the queue and one prototype per label, and its
# gradients train the query encoder and the prototypes.](../book/images/abalone_diagram.svg)
#
# A batch of documents goes through the **query encoder** (a pre-trained text encoder followed by
# a small projection head); its outputs $z_i$, normalised to unit length, are the *anchors*. Each
# anchor is compared with *keys*: the other documents of the batch, the $K$ entries of a **queue**
# of earlier documents, and, in the last two variants of the paper's ablation, one **prototype**
# $c_1, \dots, c_L$ per label. The queue is filled by a **momentum key encoder**, a copy of the
# query encoder whose weights follow the trained ones slowly,
# $\theta_k \leftarrow m\,\theta_k + (1-m)\,\theta$ with $m = 0.999$, so that keys computed a few
# hundred steps apart stay comparable {cite:p}`he2020moco`. The queue stores the labels of its
# keys too: a contrastive loss needs to know which keys are positives. Prototypes are ordinary
# trainable vectors; nothing forces them to be averages of documents, the loss alone moves them.
#
# Everything in this chapter happens inside the red box: given the vectors and their labels, how
# much is each key pulled towards, or pushed away from, each anchor?

# %% [markdown]
# ## The example
#
# Three labels borrowed from the disaster messages: *water* (a frequent, head label), *food* and
# *rescue* (a rare, tail label). The batch has four documents, the queue two keys, and there is
# one prototype per label. All of them are unit vectors in the plane at multiples of 60°, so that
# every cosine is $1$, $\tfrac12$, $-\tfrac12$ or $-1$.
#
# - **d1** carries two labels, *water* and *food*;
# - **d2** and **d3** carry *water* only, so each shares one of d1's two labels;
# - **d4** carries *rescue*, a label no other document of the batch carries;
# - the queue holds **q1** {rescue} and **q2** {food}: the batch's missing partners, seen a few
#   steps earlier.

# %%
display(we.vectors_table(ex))

colors = {"batch": "#1f77b4", "queue": "#7f7f7f", "prototype": "#ff7f0e"}
symbols = {"batch": "circle", "queue": "square", "prototype": "diamond"}
circle = np.linspace(0, 2 * np.pi, 200)
fig = go.Figure(go.Scatter(x=np.cos(circle), y=np.sin(circle), mode="lines", line=dict(color="#dddddd"),
                           showlegend=False, hoverinfo="skip"))
for role in ("batch", "queue", "prototype"):
    vs = [v for v in ex.batch + ex.queue + ex.prototypes if v.role == role]
    radius = 1.0 if role != "prototype" else 0.82     # prototypes drawn slightly inside, to stay visible
    fig.add_trace(go.Scatter(
        x=[radius * v.xy[0] for v in vs], y=[radius * v.xy[1] for v in vs], mode="markers+text", name=role,
        text=[f"{v.name} {{{', '.join(v.labels)}}}" for v in vs], textposition="top center",
        marker=dict(size=13, color=colors[role], symbol=symbols[role])))
fig.update_layout(title="The example on the unit circle (prototypes drawn on an inner ring)", template="plotly_white",
                  width=620, height=560, xaxis=dict(range=[-1.5, 1.5], zeroline=False),
                  yaxis=dict(range=[-1.3, 1.3], scaleanchor="x", zeroline=False))
fig.show()

# %% [markdown]
# ## Similarities
#
# Both losses compare an anchor $z_i$ with a key $z_k$ through
#
# $$ s(i, k) = \frac{\langle z_i, z_k \rangle}{\tau}, $$
#
# the cosine divided by the temperature $\tau$. The paper uses $\tau = 0.1$; this example uses
# $\tau = 0.5$ so that every $s$ is $2$, $1$, $-1$ or $-2$ and every exponential is one of
# $e^{2} \approx 7.389$, $e \approx 2.718$, $e^{-1} \approx 0.368$, $e^{-2} \approx 0.135$. A smaller
# $\tau$ stretches the similarities: the closest keys then dominate every sum of exponentials.
# An anchor is never its own key (the empty cells).

# %%
we.similarity_table(ex)

# %% [markdown]
# ## L_Base: attraction through shared labels
#
# L_Base generalises SupCon {cite:p}`khosla2020supcon` to several labels by weighting every other
# document $j$ of the batch by the Jaccard overlap of the label sets,
#
# $$ w_{ij} = \frac{|y_i \cap y_j|}{|y_i \cup y_j|}, \qquad N(i) = \sum_{j \ne i} w_{ij}. $$
#
# d1 and d2 share *water* out of two labels in total, so $w_{12} = \tfrac12$; d2 and d3 have the
# same label set, so $w_{23} = 1$. The row of d4 is all zeros: nobody else in the batch carries
# *rescue*, so $N(4) = 0$.

# %%
we.jaccard_table(ex)

# %% [markdown]
# The loss of anchor $i$ is a weighted average of log-probabilities,
#
# $$ \ell_i^{\text{Base}} = -\frac{1}{N(i)} \sum_{j \ne i} w_{ij}
#    \Big[ s(i,j) - \log \underbrace{\textstyle\sum_{k \ne i} e^{s(i,k)}}_{D_i} \Big], $$
#
# and L_Base is the mean of $\ell_i$ over the anchors with $N(i) > 0$. Since the weights
# $w_{ij}/N(i)$ sum to one, the term splits into two readable parts,
# $\ell_i = \log D_i - \text{pull}_i$ with $\text{pull}_i = \sum_j \frac{w_{ij}}{N(i)} s(i,j)$.
# The *pull* is the attraction: raising the similarity of a positive lowers the loss in proportion
# to its weight. $\log D_i$ is the repulsion: every key, positive or not, sits in the denominator,
# and raising any similarity raises the loss through it.
#
# Check d1 by hand: its positives d2 and d3 have weight $\tfrac12$ each and $s = 1$, so
# $\text{pull}_1 = 1$; its denominator is $e + e + e^{-2} = 5.572$, $\log D_1 = 1.718$ and
# $\ell_1 = 0.718$.

# %%
display(we.attraction_table(ex, "base").rename_axis("anchor \\ key"))
we.base_terms(ex)

# %% [markdown]
# Two things to notice. First, **d4 is left out**: without a positive it has nothing to be attracted
# to, so L_Base says nothing about where the only *rescue* document of the batch should go. On a
# long-tailed corpus this is the common case for tail labels: chapter 2 measures how often it
# happens in batches of 32 disaster messages. Second, **d1's *food* label gets no attraction**
# even though d1 has positives: both of them share *water*, and nothing pulls d1 towards other
# *food* documents. L_Base counts pairs of documents, and pairs are made of frequent labels.

# %% [markdown]
# ## L_MSC: one iteration per label, with the queue and the prototypes
#
# L_MSC turns the question around. For an anchor $i$ and **each of its labels** $c$, the positives
# are every other key carrying $c$, from the batch *and from the queue*, plus the prototype of $c$:
#
# $$ P(c, i) = \{ l \in H,\ l \ne i : c \in y_l \} \cup \{ c_c \}, \qquad
#    f(i, l) = \frac{1}{|y_i \cup y_l|} \ \ (1 \text{ for the prototype}), \qquad
#    N(i, c) = \sum_{l \in P(c, i)} f(i, l). $$
#
# The prototype guarantees at least one positive for every (anchor, label) pair, whatever the
# batch. The queue adds real documents: q1 gives d4 a *rescue* partner, q2 gives d1 a *food*
# partner. The factor $f$ discounts a positive that carries many other labels: d1 and q2 share
# *food* out of two labels in total, so q2 counts $\tfrac12$.

# %%
we.positives_table(ex)

# %% [markdown]
# Each label of the anchor gets its own normalised average, and the anchor's loss is the mean over
# its labels:
#
# $$ \ell_i^{\text{MSC}} = -\frac{1}{|y_i|} \sum_{c \in y_i} \frac{1}{N(i,c)}
#    \sum_{l \in P(c,i)} f(i,l) \Big[ s(i,l) - \log D_i^{\beta} \Big]. $$
#
# Because of the factor $\tfrac{1}{|y_i|}$, d1 gives **half** of its attraction to *water* and
# half to *food*, however many *water* documents the batch holds. In the attraction table below,
# d1's row puts $\tfrac12$ on *food* (q2 and the food prototype) where L_Base put nothing, and
# d4's row, empty under L_Base, is split between q1 and the rescue prototype. Every row sums
# to one.

# %%
we.attraction_table(ex, "msc").rename_axis("anchor \\ key")

# %% [markdown]
# ## The denominator and β
#
# The repulsion side of L_MSC weighs the keys unequally:
#
# $$ D_i^{\beta} = \beta \sum_{k \in H,\ k \ne i} e^{s(i,k)} + \sum_{c=1}^{L} e^{s(i, c_c)}. $$
#
# Every instance key (batch or queue) weighs $\beta$; every prototype weighs 1. With $\beta = 0.1$
# the denominator is mostly made of prototypes, and there are exactly $L$ of them, one per label,
# whatever the labels' frequencies. Instance keys, in contrast, carry head labels most of the time:
# in a long-tailed batch, most of the $e^{s}$ terms in an unweighted denominator belong to
# documents of frequent labels, so the repulsion each anchor feels is mostly a repulsion from head
# documents. Down-weighting instances by $\beta$ hands a fixed share of that repulsion to the
# prototypes, one per label. Only the denominator is reweighted; the numerator (which keys are
# positives, with which weight) does not involve $\beta$.
#
# Check d4 by hand. Its instance keys give
# $e^{-2} + e^{-1} + e^{-1} + e + e = 6.308$ and its prototypes $e^{-2} + e + e^{2} = 10.243$, so
# $D_4 = 0.1 \times 6.308 + 10.243 = 10.873$ and $\log D_4 = 2.386$. Its positives are q1 ($s = 1$)
# and the rescue prototype ($s = 2$), each with weight $\tfrac12$:
# $\ell_4 = -\tfrac12 \big[(1 - 2.386) + (2 - 2.386)\big] = 0.886$.

# %%
we.denominator_table(ex)

# %%
display(we.msc_label_terms(ex))
we.msc_terms(ex)

# %% [markdown]
# d1's two labels tell different stories. Its *water* term is small (0.643): d1 sits exactly on
# the water prototype. Its *food* term is large (3.143): q2 and the food prototype are 120° away.
# L_MSC averages them, so the badly placed label weighs as much as the well placed one; under
# L_Base, *food* did not appear at all.
#
# The totals are the means over anchors. L_Base averages three anchors (d4 has no positive),
# L_MSC all four (every anchor with a label counts).

# %%
hand = we.totals(ex)
hand

# %% [markdown]
# ## Forces: the gradient on each similarity
#
# Since the attraction weights $a_{ik}$ of an anchor sum to one, both losses read
# $\ell_i = \log D_i - \sum_k a_{ik}\, s(i,k)$, and the derivative with respect to one similarity
# is
#
# $$ \frac{\partial \ell_i}{\partial s(i,k)} = q_{ik} - a_{ik}, \qquad
#    q_{ik} = \frac{g(k)\, e^{s(i,k)}}{D_i}, $$
#
# with $g(k) = \beta$ for instance keys and $1$ for prototypes under L_MSC ($g = 1$ everywhere
# under L_Base). $q_{ik}$ is the key's share of the denominator, the repulsion it exerts;
# $a_{ik}$ is its attraction weight. A negative entry means the key pulls the anchor (raising the
# similarity lowers the loss), a positive one that it pushes; each row sums to zero. The gradient
# on $z_i$ itself is $\frac1\tau \sum_k (q_{ik} - a_{ik})\, z_k$, restricted to the directions
# tangent to the unit sphere.
#
# Two rows are worth reading. d4 is pulled hard towards q1 ($-0.475$) and slightly *pushed* from
# its own prototype ($+0.180$): the prototype already coincides with d4 and takes 68 % of its
# denominator, more than its attraction weight of one half, so the loss prefers to bring q1
# closer rather than to move towards the prototype. d1 is pulled towards the food prototype and
# q2 and pushed from the water prototype it sits on: the per-label average asks for a point
# between its two labels.

# %%
display(we.gradient_table(ex, "base").rename_axis("L_Base: anchor \\ key"))
we.gradient_table(ex, "msc").rename_axis("L_MSC: anchor \\ key")

# %% [markdown]
# This form also says **when β does not change the gradients**: if every key of the denominator,
# prototypes included, were multiplied by the same $\beta$, then $q_{ik}$ would not change (β
# cancels between the numerator and the denominator of $q$), and neither would any gradient; the
# loss would only move by the constant $\log \beta$. The same holds for a denominator without
# prototypes, as in L_BQueue. β matters in L_MSC only because the prototypes keep weight 1: it sets
# how much of the repulsion comes from instances and how much from the prototypes. Exercise 3
# checks this numerically.

# %% [markdown]
# ## The same numbers from `abalone_core.method.losses`
#
# The tables above were computed with plain loops (`abalone_core.analysis.worked_example`), one anchor, one
# key and one label at a time. The training code uses the vectorised losses of
# `abalone_core.method.losses`. They return a mean over anchors, not the per-anchor terms; one anchor's
# term is the loss of a batch holding that anchor alone, with the other batch documents moved to
# the queue (the anchor then sees the same keys with the same labels and weights). The last cell
# checks all of it to $10^{-9}$.

# %%
arr = {k: torch.tensor(v, dtype=torch.float64) for k, v in ex.arrays().items()}
queue_kw = dict(queue_z=arr["queue_z"], queue_y=arr["queue_y"])
library = {
    "L_Base": float(losses.base_loss(arr["z"], arr["y"], temperature=ex.temperature)),
    "L_MSC": float(losses.msc_loss(arr["z"], arr["y"], arr["prototypes"], temperature=ex.temperature,
                                   beta=ex.beta, **queue_kw)),
}
compare = hand[["value"]].rename(columns={"value": "by hand"}).assign(library=pd.Series(library))
display(compare)
per_anchor = pd.concat([we.base_terms(ex)["l_i"].rename("l_i Base by hand"),
                        we.msc_terms(ex)["l_i"].rename("l_i MSC by hand"),
                        we.library_terms(ex)], axis=1)
display(per_anchor)
np.testing.assert_allclose(compare["by hand"], compare["library"], atol=1e-9)
np.testing.assert_allclose(per_anchor["l_i Base by hand"], per_anchor["l_i Base"], atol=1e-9)
np.testing.assert_allclose(per_anchor["l_i MSC by hand"], per_anchor["l_i MSC"], atol=1e-9)

# %% [markdown]
# The paper's ablation ladder (its Table 2) adds one ingredient at a time. On this example,
# L_BQueue lets the queue join the keys: d4 now has q1 as a positive and enters the loss.
# L_BQProto adds the prototypes as keys with a one-label set (no per-label iteration, no β), and
# L_MSC adds both.

# %%
ladder = {}
for variant in ("base", "bqueue", "bqproto", "msc"):
    kw = {}
    if losses.VARIANTS[variant][0]:
        kw.update(queue_kw)
    if losses.VARIANTS[variant][1]:
        kw["prototypes"] = arr["prototypes"]
    ladder[variant] = float(losses.contrastive_loss(arr["z"], arr["y"], variant=variant,
                                                    temperature=ex.temperature, beta=ex.beta, **kw))
pd.Series(ladder, name="loss on the example (nats)").to_frame()

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# **Exercise 1.** Set $\beta = 1$. Which denominators grow the most, and what happens to d4's
# term? Predict the sign of the change before opening the solution.
#
# :::{admonition} Hint
# :class: dropdown
# With $\beta = 1$ the instance keys weigh as much as the prototypes. d4's instance keys add
# $6.308$ instead of $0.631$ to its denominator; its numerator does not change.
# :::

# %% tags=["hide-cell"]
# Solution 1: beta = 1 removes the down-weighting of instances.
ex1 = ex.replace(beta=1.0)
d_before, d_after = we.denominator_table(ex), we.denominator_table(ex1)
solution1 = pd.DataFrame({"D_MSC, beta=0.1": d_before["D_MSC"], "D_MSC, beta=1": d_after["D_MSC"],
                          "prototype share, beta=0.1": d_before["prototype share"],
                          "prototype share, beta=1": d_after["prototype share"],
                          "l_i, beta=0.1": we.msc_terms(ex)["l_i"], "l_i, beta=1": we.msc_terms(ex1)["l_i"]})
display(solution1)
# d4 by hand: log(6.308 + 10.243) = 2.806 and l_4 = -(1/2) [(1 - 2.806) + (2 - 2.806)] = 1.306.
assert math.isclose(solution1.loc["d4", "l_i, beta=1"], 1.306, abs_tol=1e-3)
fall = solution1["prototype share, beta=0.1"] - solution1["prototype share, beta=1"]
weakest = d_before["sum exp s: prototypes"].idxmin()
assert fall.idxmax() == weakest == "d2"
assert (solution1["l_i, beta=1"] > solution1["l_i, beta=0.1"]).all()
print("With beta = 1 every denominator grows and, the numerators being unchanged, every term grows.")
shares = solution1.loc[weakest, ["prototype share, beta=0.1", "prototype share, beta=1"]]
print(f"The prototypes' share falls most for {weakest}, from {shares.iloc[0]:.0%} to {shares.iloc[1]:.0%} "
      "of its denominator: its prototypes")
print(f"are the farthest from it (their exponentials sum to {d_before['sum exp s: prototypes'].min():.3f}, "
      "the smallest).")

# %% [markdown]
# **Exercise 2.** Add a third queue key, q3 {rescue}, at 180° (on top of d4). How many positives
# does d4's *rescue* label have now, what is $N(4, \text{rescue})$, and does $\ell_4$ go up or
# down? Which other anchors see q3, and as what?
#
# :::{admonition} Hint
# :class: dropdown
# q3 has the same label set as d4, so $f = 1$. It is a negative for every other anchor, with
# weight $\beta$ in their denominators.
# :::

# %% tags=["hide-cell"]
# Solution 2: one more tail key in the queue.
ex2 = ex.add_queue_key("q3", 180, ("rescue",))
display(we.positives_table(ex2).query("anchor == 'd4'"))
display(pd.DataFrame({"l_i before": we.msc_terms(ex)["l_i"], "l_i with q3": we.msc_terms(ex2)["l_i"]}))
# N(4, rescue) = 1 (q1) + 1 (q3) + 1 (prototype) = 3; l_4 = -(1/3)[(1 - L) + (2 - L) + (2 - L)], L = log D_4.
log_d4 = math.log(0.1 * (6.308 + math.e ** 2) + 10.243)
assert math.isclose(we.msc_terms(ex2).loc["d4", "l_i"], -((1 - log_d4) + 2 * (2 - log_d4)) / 3, abs_tol=1e-3)
n_rescue = we.positives_table(ex2).query("anchor == 'd4'")["N(i,c)"].item()
before, after = we.msc_terms(ex)["l_i"], we.msc_terms(ex2)["l_i"]
assert after["d4"] < before["d4"] and (after.drop("d4") > before.drop("d4")).all()
print(f"N(4, rescue) = {n_rescue:g}; "
      f"l_4 falls from {before['d4']:.3f} to {after['d4']:.3f}: "
      "the new positive is already where d4 is. The other anchors' terms rise a little: q3 is one more negative.")

# %% [markdown]
# **Exercise 3.** Give the prototypes the weight β too, so that every key of the denominator
# weighs β. Show that the gradient table is then exactly the one of $\beta = 1$, and that each
# $\ell_i$ is its $\beta = 1$ value plus $\log \beta$.
#
# :::{admonition} Hint
# :class: dropdown
# Compute $q_{ik} = g(k) e^{s(i,k)} / \sum_{k'} g(k') e^{s(i,k')}$ from the similarity table
# for two weightings of the keys, and $\ell_i = \log D_i - \text{pull}_i$ with the pull of the
# `msc_terms` table, which does not depend on the weights.
# :::

# %% tags=["hide-cell"]
# Solution 3: a common factor in front of every key cancels in q and shifts log D by log(beta).
sims = we.similarity_table(ex)
is_proto = np.array([name.startswith("p_") for name in sims.columns])
attraction = we.attraction_table(ex, "msc")


def forces(proto_weight):
    g = np.where(is_proto, proto_weight, ex.beta)
    e = np.exp(sims.fillna(-np.inf)) * g
    return e.div(e.sum(axis=1), axis=0) - attraction, np.log(e.sum(axis=1))


paper_forces, paper_log_d = forces(1.0)            # L_MSC: prototypes weigh 1
uniform_forces, uniform_log_d = forces(ex.beta)     # every key weighs beta
np.testing.assert_allclose(paper_forces, we.gradient_table(ex, "msc"), atol=1e-12)   # the chapter's table
display(pd.DataFrame({"log D, prototypes weigh 1": paper_log_d, "log D, all keys weigh beta": uniform_log_d,
                      "difference (= log beta)": uniform_log_d - np.log(np.exp(sims.fillna(-np.inf)).sum(axis=1))}))
# With uniform weights the forces are those of beta = 1 everywhere: beta has cancelled.
np.testing.assert_allclose(uniform_forces, we.gradient_table(ex.replace(beta=1.0), "msc"), atol=1e-12)
print(f"all keys weighted by beta: log D = log D(beta=1) + log(beta) = log D(beta=1) {math.log(ex.beta):+.3f}, "
      "forces identical to beta = 1; beta only acts because the prototypes keep weight 1.")

# %% [markdown]
# ## A real batch: play with β and τ
#
# The example has four documents. The figure below does the same accounting on a real batch:
# `batch_size` labelled training messages of the disaster corpus drawn with a fixed seed, a queue
# of `queue_size` further messages, their real label sets, and their vectors from the pre-trained
# MiniLM encoder (frozen, no training; mean-pooled sentence embeddings, projection head
# discarded). The prototypes are random Gaussian vectors, as at the start of training. Labels are
# split into head, medium and tail thirds by training frequency, the rule of every chapter.
#
# For each loss and label group the three panels show
#
# - **attraction share**: the part of all attraction weights (the $a_{ik}$ above) that goes to the
#   group's labels; it depends on the labels only;
# - **repulsion share**: the part of the denominators' softmax mass ($q_{ik}$, summed over
#   anchors) exerted by keys of the group's labels, an instance key splitting its share evenly
#   over its labels and prototype $c$ giving its share to $c$;
# - **gradient share**: the part of the gradient norm on the batch's vectors that falls on
#   documents of the group (`analysis.gradient_mass`).

# %%
from abalone_core.data.batching import tokenize
from abalone_core.training.config import Config
from abalone_core.data import load_dataset
from abalone_core.evaluation.evaluate import embed
from abalone_core.evaluation.metrics import frequency_groups
from abalone_core.training.devices import resolve_device
from abalone_core.training.encoders import build_encoder

train = load_dataset(dataset).split("train")
labelled = np.flatnonzero(train.labels.any(axis=1))
y_all = train.labels[labelled].astype(np.int64)
groups = frequency_groups(y_all.sum(axis=0))
rng = np.random.default_rng(seed)
pick = rng.choice(len(labelled), size=batch_size + queue_size, replace=False)
encoder, tokenizer = build_encoder(Config(backbone=backbone, max_length=max_length))
dev = resolve_device(device)
ids = tokenize([train.texts[labelled[i]] for i in pick], tokenizer, max_length)
vectors = embed(encoder.to(dev), ids, tokenizer.pad_token_id, batch_size=64, device=dev, progress=False)
labels = y_all[pick]
prototypes = rng.normal(size=(labels.shape[1], vectors.shape[1]))
z_batch, y_batch = vectors[:batch_size], labels[:batch_size]
z_queue, y_queue = vectors[batch_size:], labels[batch_size:]
grid = balance.balance_grid(z_batch, y_batch, groups, prototypes, z_queue, y_queue,
                            betas=(0.01, 0.1, 0.3, 1.0), temperatures=(0.05, 0.1, 0.5))
present = {g: int((y_batch[:, groups == g].sum(axis=0) > 0).sum()) for g in ("head", "medium", "tail")}
print(f"batch of {batch_size} messages, queue of {queue_size}; labels present in the batch by group: {present} "
      f"(of {[int((groups == g).sum()) for g in ('head', 'medium', 'tail')]})")

# %%
plots.balance_slider(grid, title=f"A real batch of {batch_size} disaster messages (frozen MiniLM vectors, random "
                                 "prototypes): move the slider over (beta, tau)").show()

# %% [markdown]
# What to watch for as you move the slider:
#
# - the **attraction** bars never move: attraction weights depend on the labels alone. The tail
#   bar is what the per-label iteration buys: compare L_Base's tail share with L_MSC's;
# - the **repulsion** bars of L_Base never move with β (it has no β) and barely with τ; those of
#   L_MSC move with both. A small β and a large τ hand the denominator to the prototypes, one per
#   label, and the tail's share of the repulsion rises towards its share of the labels;
# - at $\tau = 0.05$ or $0.1$ the random prototypes are nearly orthogonal to documents whose
#   embeddings are close to each other, so $e^{s}$ of an instance key dwarfs that of a prototype
#   and even $\beta = 0.01$ changes little: β acts through the *ratio* of the two kinds of keys,
#   which training changes as the prototypes move towards their documents;
# - the **gradient** share of the tail documents is small in every setting, since few documents
#   of a batch carry tail labels; compare it between the two losses at the paper's
#   $\beta = 0.1$, $\tau = 0.1$.

# %%
tail = grid[grid["group"] == "tail"].set_index(["beta", "temperature", "loss"])
at = lambda b, t, loss, col: tail.loc[(b, t, loss), col]
display(Markdown(
    f"On this batch the tail third of the labels receives {at(0.1, 0.1, 'L_Base', 'attraction_share'):.1%} of "
    f"L_Base's attraction and {at(0.1, 0.1, 'L_MSC', 'attraction_share'):.1%} of L_MSC's. At beta = 0.1, "
    f"tau = 0.1, tail keys exert {at(0.1, 0.1, 'L_MSC', 'repulsion_share'):.1%} of L_MSC's repulsion "
    f"({at(0.1, 0.1, 'L_Base', 'repulsion_share'):.1%} of L_Base's); at beta = 0.01, tau = 0.5, "
    f"{at(0.01, 0.5, 'L_MSC', 'repulsion_share'):.1%}. The tail documents take "
    f"{at(0.1, 0.1, 'L_Base', 'gradient_share'):.1%} of L_Base's gradient norm and "
    f"{at(0.1, 0.1, 'L_MSC', 'gradient_share'):.1%} of L_MSC's at beta = 0.1, tau = 0.1."))

# %% [markdown]
# ## What we saw
#
# - A contrastive loss is an attraction (a weighted mean of similarities to positives) minus a
#   repulsion (the log of a sum of exponentials over all keys); its gradient on a similarity is
#   the key's share of the denominator minus its attraction weight.
# - L_Base weighs pairs of documents by their Jaccard overlap. An anchor whose labels nobody else
#   in the batch carries (d4, a tail label) is dropped, and a label shared with nobody (d1's
#   *food*) gets no attraction: this is the *lack of positives*.
# - L_MSC iterates over the labels of each anchor. The queue supplies earlier documents as
#   positives and the prototypes guarantee one positive per (anchor, label) pair; every label of
#   an anchor receives the same share, $1/|y_i|$, of its attraction.
# - β down-weights instance keys in the denominator so that the prototypes, one per label,
#   take a fixed part of the repulsion. A factor common to every key would cancel from the
#   gradients; β acts because prototypes keep the weight 1, and how much it acts depends on how
#   close the prototypes are to the documents.
# - Every number here agrees with `abalone_core.method.losses` to $10^{-9}$, so the training chapters
#   optimise exactly these quantities.
