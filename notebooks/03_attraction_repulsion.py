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
# # Attraction and repulsion: who dominates the loss?
#
# A supervised contrastive loss does two things at once. Its numerator *attracts* an anchor
# towards its positives, the keys that share one of its labels; its denominator *repels* the
# anchor from every key, positive or not. Graf et al. {cite:p}`graf2021dissecting` showed that
# for single-label data the balance of the two decides the geometry the encoder learns. ABALONE
# {cite:p}`audibert2024abalone` argues (its Section 3 and appendix E) that on long-tailed
# multi-label data the balance is broken in a specific way: attraction flows through pairs of
# documents, pairs are made of frequent labels, and the denominator is crowded with documents of
# frequent labels. This chapter measures both effects on real batches of the disaster messages.
#
# You will learn
#
# - how to read any of the paper's contrastive losses as "log of a denominator minus a weighted
#   mean of similarities", and what the gradient on one similarity is;
# - how the four losses of the paper's ablation ladder, L_Base, L_BQueue, L_BQProto and L_MSC,
#   share out attraction and repulsion between head, medium and tail labels, when they all see
#   **the same batch, the same queue and the same prototypes**;
# - why the per-label attraction of L_MSC is not set by a label's frequency, how it still follows
#   that frequency through the labels a label travels with, and how much;
# - when β changes the gradients of L_MSC and when it only shifts the loss by a constant;
# - how close documents of the same label already are in the pre-trained MiniLM space.
#
# Chapter 0 did all of this by hand on four documents; here the same quantities are computed on
# batches of 32 real messages with a queue of earlier ones. Nothing is trained in this chapter:
# the embeddings come from the pre-trained encoder, and the prototypes are either random (as at
# the start of training) or placed on the documents of their label (as after some training).

# %% tags=["remove-output"]
# Colab only: install the package (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    # %pip install -q "abalone-core[colab] @ git+https://github.com/abalone-book/abalone-book@main"

# %% tags=["parameters"]
# Parameters (papermill: -p name value)
dataset = "disaster"
backbone = "minilm"      # offline default; any Hub id works where the Hub is reachable
batch_size = 32          # the paper's batch size
queue_size = 512         # the paper's queue
n_batches = 50           # random batches averaged for the term counts
n_docs = 256             # documents embedded for S_att / S_rep and the gradient norms
max_length = 64
beta = 0.1
temperature = 0.1
seed = 0
device = "auto"
profile = "cpu"          # unused here: this chapter trains nothing

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from abalone_core import notebook as nb

env = nb.setup()  # first: quiet progress bars and warnings for the imports below

from abalone_core import analysis
from abalone_core.analysis import plots
from abalone_core.method import losses
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
names = train.label_names
groups = frequency_groups(y_all.sum(axis=0))
rng = np.random.default_rng(seed)
print(f"{len(labelled)} labelled training documents, {len(names)} labels")

# %% [markdown]
# ## One form for every loss
#
# Write $s(i,k) = \langle z_i, z_k\rangle / \tau$ for the scaled cosine between anchor $i$ and key
# $k$. Every contrastive loss of the paper can be written, for one anchor, as
#
# $$ \ell_i = \log D_i - \sum_k a_{ik}\, s(i,k), \qquad D_i = \sum_{k \ne i} g(k)\, e^{s(i,k)}, $$
#
# where the *attraction weights* $a_{ik} \ge 0$ sum to one over the positives of $i$, and $g(k)$ is
# the weight of key $k$ in the denominator. The losses differ only in the keys they use, in the
# $a_{ik}$ and in the $g(k)$:
#
# - **L_Base**: keys are the other documents of the batch; $a_{ij} = w_{ij}/N(i)$ with the Jaccard
#   overlap $w_{ij}$ of the label sets; $g = 1$.
# - **L_BQueue**: the same weights, with the queue's keys added to the batch's.
# - **L_BQProto**: the prototypes join the keys, each with a one-label set, still with $g = 1$.
# - **L_MSC**: the anchor iterates over its labels, each label $c$ receiving $1/|y_i|$ of the
#   attraction, shared among the batch and queue keys carrying $c$ and the prototype of $c$;
#   instance keys weigh $g = \beta$ and prototypes $g = 1$.
#
# Differentiating gives the force each key exerts on the anchor:
#
# $$ \frac{\partial \ell_i}{\partial s(i,k)} = q_{ik} - a_{ik}, \qquad q_{ik} = \frac{g(k)\, e^{s(i,k)}}{D_i}. $$
#
# $q_{ik}$ is the key's share of the denominator (the repulsion it exerts) and $a_{ik}$ its
# attraction weight. The first quantity depends on the embeddings; the second depends on the labels
# only. That split organises the chapter: the attraction weights can be counted on label matrices
# alone, over many batches, while the repulsion and the gradients need vectors.

# %% [markdown]
# ## A fair comparison: the same keys for every loss
#
# Comparing L_Base computed on a batch alone with L_MSC computed on the batch plus a queue of 512
# keys mixes two effects: the queue and the loss's weights. Here each random batch is drawn **together with its queue**, once, and every loss
# is evaluated on that draw. L_Base keeps its own definition (the batch only) and L_BQueue is the
# same weighting applied to the batch *and* the queue, so the step from L_Base to L_BQueue isolates
# the queue, and the step from L_BQueue to L_MSC, on identical keys, isolates the per-label
# iteration, the prototypes and β together. L_MSC with β = 1 then separates β from the rest.
#
# `analysis.term_counts` attributes each weight to labels. An attraction weight $a_{ik}$ of a pair
# that shares several labels is split evenly among them; a key's denominator weight $g(k)$ is
# split evenly among the key's labels, a prototype giving all of it to its label. The
# `attraction_share` of a label is its part of all the attraction of all anchors; the
# `repulsion_from_share` is its keys' part of all the denominators' weights (who pushes). Both are
# label counts, without similarities: they say how much *room* each label has in the loss before
# the embeddings decide how much of that room is used. (L_BQProto has no entry in this table:
# `term_counts` models the instance-pair weighting and the balanced one, not the hybrid of
# prototypes inside Jaccard weights. It appears in the gradient section below.)

# %%
variants = {"L_Base": dict(loss="base", use_queue=False), "L_BQueue": dict(loss="base", use_queue=True),
            f"L_MSC (beta={beta})": dict(loss="msc", beta=beta, use_queue=True),
            "L_MSC (beta=1)": dict(loss="msc", beta=1.0, use_queue=True)}
parts = {name: [] for name in variants}
for _ in range(n_batches):
    idx = rng.choice(len(y_all), size=batch_size + queue_size, replace=False)   # one draw for all losses
    batch, queue = y_all[idx[:batch_size]], y_all[idx[batch_size:]]
    for name, kw in variants.items():
        kw = dict(kw)
        queue_labels = queue if kw.pop("use_queue") else None
        parts[name].append(analysis.term_counts(batch, queue_labels=queue_labels, groups=groups, names=names, **kw))

# %% tags=["hide-input"]
numeric = ["n_anchors", "attraction", "repulsion", "repulsion_from", "attraction_share", "repulsion_share",
           "repulsion_from_share", "attraction_per_anchor"]
terms = {}
for name, frames in parts.items():
    mean = pd.concat(frames).groupby("label")[numeric].mean()
    terms[name] = frames[0][["label", "name", "group"]].set_index("label").join(mean).reset_index()
fig = plots.term_share_bars(terms, title="Share of attraction and of repulsion by label group "
                                         f"({n_batches} batches of {batch_size}, queue {queue_size})")
fig.update_xaxes(title_text="label group")
fig.update_yaxes(title_text="share of the loss's total", tickformat=".0%")
plots.color_by_loss(fig).show()
table = pd.concat({name: t.groupby("group")[["attraction_share", "repulsion_from_share"]].sum()
                   for name, t in terms.items()}, names=["loss", "group"])
table.columns = ["attraction share", "repulsion share (keys)"]
table.style.format("{:.1%}")

# %% tags=["hide-input"]
share = lambda name, g, c: terms[name].loc[terms[name]["group"] == g, c].sum()
msc = f"L_MSC (beta={beta})"
display(Markdown(
    f"The tail third of the labels receives {share('L_Base', 'tail', 'attraction_share'):.1%} of L_Base's "
    f"attraction, {share('L_BQueue', 'tail', 'attraction_share'):.1%} of L_BQueue's on the same batches with "
    f"their queues, and {share(msc, 'tail', 'attraction_share'):.1%} of L_MSC's; the head third receives "
    f"{share('L_Base', 'head', 'attraction_share'):.1%}, {share('L_BQueue', 'head', 'attraction_share'):.1%} "
    f"and {share(msc, 'head', 'attraction_share'):.1%}. Head keys make up "
    f"{share('L_BQueue', 'head', 'repulsion_from_share'):.1%} of L_BQueue's denominator weight and "
    f"{share(msc, 'head', 'repulsion_from_share'):.1%} of L_MSC's with beta = {beta} "
    f"({share('L_MSC (beta=1)', 'head', 'repulsion_from_share'):.1%} with beta = 1)."))

# %% [markdown]
# Read the attraction panel from left to right within each group. The queue (L_Base to L_BQueue)
# lets the anchors that had no positive in the batch enter the loss, and those anchors are mostly
# the ones whose labels are rare; on the disaster messages they are few (chapter 2 counts them), so
# this step moves the shares little. And the queue does not change *how* an anchor
# spreads its attraction: under Jaccard weights a label shared with many keys collects a weight
# from each of them, so an anchor with a head label and a tail label still gives most of its pull
# to the head label. The per-label iteration of L_MSC is the step that changes the spreading: each
# label of the anchor gets $1/|y_i|$, whatever the number of keys that carry it.
#
# The repulsion panel reads differently. Under L_Base and L_BQueue every key weighs 1, so the share
# of the denominator that head labels take is simply their share of the keys' labels, which is
# large in a long-tailed corpus. Under L_MSC with β = 0.1 the instance keys weigh a tenth and the
# prototypes, one per label whatever its frequency, take a fixed part of the weight: the head's
# share falls. With β = 1 the prototypes are only $L$ keys among $B + K$ instances and the head
# share comes back close to L_BQueue's. These are weights, before any similarity: in a real
# denominator each weight is multiplied by $e^{s(i,k)}$, and that is where the embeddings and the
# prototypes' positions come in (last section).

# %% [markdown]
# ## Per label: is L_MSC's attraction flat?
#
# The figure below divides each label's attraction by the number of anchors carrying it:
# `attraction_per_anchor` is the mean share of an anchor's attraction that goes to the label.
# Under L_Base a frequent label takes more than its share, since the anchor shares it with more
# keys. Under L_MSC an anchor gives exactly $1/|y_i|$ to each of its labels, so the per-anchor
# share of label $c$ is the mean of $1/|y_i|$ over the anchors carrying $c$. The frequency of $c$
# does not enter that formula, but the number of other labels that come with $c$ does: a label
# that appears mostly on documents with five labels gets about a fifth, one that often appears
# alone gets more. The bars are therefore not flat, and if frequent labels tend to travel with
# more (or fewer) co-labels, the bars follow frequency after all, through the co-labels. The
# check below measures both.

# %% tags=["hide-input"]
fig = plots.term_share_bars(terms, columns=("attraction_per_anchor",), by="label",
                            title="Mean share of an anchor's attraction given to each label (labels by frequency)")
fig.update_xaxes(title_text="label (most frequent first)")
fig.update_yaxes(title_text="share of an anchor's attraction", tickformat=".0%")
plots.color_by_loss(fig).show()

# %% [markdown]
# The check below compares L_MSC's bars with the mean of $1/|y_i|$ over the training documents
# carrying each label (computed from the label matrix, no batch involved), and measures the trend
# with frequency as a Spearman rank correlation.

# %%
per_anchor = terms[msc].set_index("label")["attraction_per_anchor"].dropna()
inverse_cardinality = pd.Series([(1 / y_all[y_all[:, c] == 1].sum(axis=1)).mean() for c in per_anchor.index],
                                index=per_anchor.index)
frequency = pd.Series(y_all.sum(axis=0), index=range(y_all.shape[1])).loc[per_anchor.index]
base_per_anchor = terms["L_Base"].set_index("label")["attraction_per_anchor"].loc[per_anchor.index]
check = pd.Series({
    "L_MSC: smallest per-anchor share": per_anchor.min(),
    "L_MSC: largest per-anchor share": per_anchor.max(),
    "L_MSC: correlation with mean 1/|y_i|": np.corrcoef(per_anchor, inverse_cardinality)[0, 1],
    "L_MSC: rank correlation with frequency": per_anchor.corr(frequency, method="spearman"),
    "L_Base: rank correlation with frequency": base_per_anchor.corr(frequency, method="spearman"),
    "mean 1/|y_i|: rank correlation with frequency": inverse_cardinality.corr(frequency, method="spearman"),
}).to_frame("value")
check.style.format("{:.2f}")

# %% tags=["hide-input"]
display(Markdown(
    f"Under L_MSC the per-anchor share ranges from {per_anchor.min():.2f} to {per_anchor.max():.2f} across labels: "
    f"the bars are not flat. They follow the mean of 1/|y_i| over the documents carrying each label "
    f"(correlation {check.loc['L_MSC: correlation with mean 1/|y_i|', 'value']:.2f}). Their rank correlation "
    f"with frequency is {check.loc['L_MSC: rank correlation with frequency', 'value']:.2f} (against "
    f"{check.loc['L_Base: rank correlation with frequency', 'value']:.2f} under L_Base), and it comes through the "
    f"co-labels: on this corpus the mean of 1/|y_i| itself has a rank correlation of "
    f"{check.loc['mean 1/|y_i|: rank correlation with frequency', 'value']:.2f} with frequency."))

# %% [markdown]
# ## Attraction and repulsion scores in the pre-trained space
#
# The weights say how much room each label has in the loss; the scores below say where the
# documents actually are. For each label $c$, with $P_c$ the documents carrying it,
#
# $$ S_{\text{att}}(c) = -\frac{1}{|P_c|(|P_c|-1)} \sum_{i \ne j \in P_c} \langle z_i, z_j\rangle, \qquad
#    S_{\text{rep}}(c) = \frac{1}{|P_c|\,|\bar P_c|} \sum_{i \in P_c,\, j \notin P_c} \langle z_i, z_j\rangle, $$
#
# the negative mean cosine between documents of the label and the mean cosine between them and the
# documents without it. Training should push both down: positives closer, negatives farther. The
# scores are computed on `n_docs` messages embedded by the pre-trained MiniLM encoder (mean
# pooling, projection head discarded), that is, at the *start* of contrastive training. The same
# scores after training would need a trained encoder, which this chapter does not train to stay
# fast; chapter 7 compares trained representations with clustering scores and UMAP maps.

# %%
encoder, tokenizer = build_encoder(Config(backbone=backbone, max_length=max_length))
dev = resolve_device(device)
pick = rng.choice(len(labelled), size=min(n_docs, len(labelled)), replace=False)
texts = [train.texts[labelled[i]] for i in pick]
ids = tokenize(texts, tokenizer, max_length)
z = embed(encoder.to(dev), ids, tokenizer.pad_token_id, batch_size=64, device=dev, progress=False)
y = y_all[pick]
scores = analysis.attraction_repulsion(z, y, groups=groups, names=names)
fig = plots.attraction_repulsion_bars(scores, title=f"S_att and S_rep per label, {len(pick)} documents, "
                                                    "pre-trained MiniLM")
fig.show()

# %% tags=["hide-input"]
by_group = scores.groupby("group")[["s_att", "s_rep"]].mean().loc[["head", "medium", "tail"]]
display(Markdown(
    f"Averaged over the labels of each third, S_att is {by_group.loc['head', 's_att']:.2f} (head), "
    f"{by_group.loc['medium', 's_att']:.2f} (medium) and {by_group.loc['tail', 's_att']:.2f} (tail), and S_rep "
    f"{by_group.loc['head', 's_rep']:.2f}, {by_group.loc['medium', 's_rep']:.2f} and {by_group.loc['tail', 's_rep']:.2f}. "
    f"The gap between the two, {(-by_group['s_att'] - by_group['s_rep']).min():.2f} at the smallest, is how much "
    "closer documents of a label are to each other than to the rest, before any training."))

# %% [markdown]
# Pre-trained sentence embeddings of short messages are all fairly similar to each other: the mean
# cosine between unrelated messages is far from zero. That is why the gap between $-S_{\text{att}}$
# and $S_{\text{rep}}$ is small compared with the range of a cosine, and why a temperature of
# $0.1$ is needed to turn these small differences into a usable softmax. Tail labels have few
# documents in the sample, so their $S_{\text{att}}$ is a mean over few pairs; a label carried by a
# single sampled document has no pair at all and no bar.

# %% [markdown]
# ## Where the gradient goes: the ladder on the same keys
#
# Weights become forces once they meet the embeddings. The embedded documents are cut into
# batches of `batch_size`; for each batch the **other** embedded documents form its queue, and
# every loss of the ladder sees that batch, that queue and one shared set of prototypes (L_Base
# uses the batch only, by definition). For each label, `analysis.gradient_mass` averages the norm of
# $\partial \mathcal{L} / \partial z_i$ over the batch documents carrying it; a group's
# `grad_share` is its part of the total, averaged over the batches. The loss call is the
# training code's own, `losses.contrastive_loss`.

# %%
torch.manual_seed(seed)
random_prototypes = torch.randn(len(names), z.shape[1])


def ladder_gradients(z, y, prototypes, betas=(beta, 1.0)):
    """Group shares of the gradient norm for every variant, on the same batches, queues and prototypes."""
    z_t, y_t = torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    rows = []
    for start in range(0, len(z) - batch_size + 1, batch_size):
        inside = np.zeros(len(z), dtype=bool)
        inside[start:start + batch_size] = True
        queue = dict(queue_z=z_t[~inside], queue_y=y_t[~inside])
        setups = {"L_Base": ("base", {}, beta), "L_BQueue": ("bqueue", queue, beta),
                  "L_BQProto": ("bqproto", dict(queue, prototypes=prototypes), beta)}
        for b in betas:
            setups[f"L_MSC (beta={b:g})"] = ("msc", dict(queue, prototypes=prototypes), b)
        for name, (variant, kw, b) in setups.items():
            loss_fn = lambda zz, yy, variant=variant, b=b, **kw: losses.contrastive_loss(
                zz, yy, variant=variant, temperature=temperature, beta=b, **kw)
            g = analysis.gradient_mass(z[inside], y[inside], loss_fn, groups=groups, names=names, **kw)
            rows.append(g.groupby("group")["grad_share"].sum().rename(name))
    return pd.concat(rows, axis=1).T.groupby(level=0, sort=False).mean()[["head", "medium", "tail"]]


grad_random = ladder_gradients(z, y, random_prototypes)
grad_random.style.format("{:.1%}")

# %% tags=["hide-input"]
step = lambda a, b: grad_random.loc[b, "tail"] - grad_random.loc[a, "tail"]
display(Markdown(
    f"Tail documents take {grad_random.loc['L_Base', 'tail']:.1%} of L_Base's gradient norm. Each step of the ladder "
    f"moves that share by {step('L_Base', 'L_BQueue'):+.2%} (the queue), {step('L_BQueue', 'L_BQProto'):+.2%} "
    f"(prototypes as keys) and {step('L_BQProto', f'L_MSC (beta={beta:g})'):+.2%} (the per-label iteration "
    f"with β = {beta}); β = 1 instead of {beta} moves it by "
    f"{step(f'L_MSC (beta={beta:g})', 'L_MSC (beta=1)'):+.2%}."))

# %% [markdown]
# Why do the first steps change so little here? The queue changes how many positives an anchor
# has, not the fact that under Jaccard weights its pull goes mostly to its frequent labels, so the
# forces keep their shape. Random prototypes are nearly orthogonal to every document, so at
# $\tau = 0.1$ their
# $e^{s}$ is tiny next to an instance key's, and as keys of L_BQProto they hardly enter the
# denominators. The per-label iteration changes the *attraction weights*, and with them the forces
# on the documents that carry a tail label next to head labels. β, as the next section explains,
# cannot act while the prototypes are far away.

# %% [markdown]
# ## When does β change the gradients?
#
# In the force $q_{ik} - a_{ik}$ only $q_{ik}$ involves β. If every key of a denominator is
# multiplied by the same β, β cancels between the numerator and the denominator of $q_{ik}$, and the
# loss only moves by the constant $\log\beta$: **no gradient changes**. This is the case of any
# denominator without prototypes, and nearly the case of L_MSC when the prototypes are far from the
# anchors, since then the prototype terms are negligible and every remaining key carries the same β.
# β acts through the ratio between the instance part and the prototype part of $D_i$:
#
# $$ q^{\text{proto}}_i = \frac{\sum_c e^{s(i,c_c)}}{\beta \sum_{k \in H} e^{s(i,k)} + \sum_c e^{s(i, c_c)}}. $$
#
# At the start of training, with random prototypes, $q^{\text{proto}}_i$ is close to zero for any
# reasonable β and β changes almost nothing. As training moves the prototypes towards their
# documents, $e^{s(i,c_c)}$ grows and β starts to decide how much of the repulsion the prototypes
# take. The cell below measures this on one batch: the relative change of the whole gradient
# between β = 0.1 and β = 1, with random prototypes and with each prototype placed on the mean of
# its label's documents (a stand-in for trained prototypes).


# %%
def mean_prototypes(z, y, fallback):
    """Each label's prototype on the mean direction of its documents (random where none carries it)."""
    z_t = torch.nn.functional.normalize(torch.tensor(z, dtype=torch.float32), dim=1)
    y_t = torch.tensor(y, dtype=torch.float32)
    sums = y_t.T @ z_t
    return torch.where(y_t.sum(0, keepdim=True).T > 0, sums, fallback)


def beta_effect(prototypes, b0=beta, b1=1.0):
    z_t, y_t = torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    grads, proto_share = [], []
    for b in (b0, b1):
        zb = z_t[:batch_size].clone().requires_grad_(True)
        loss = losses.msc_loss(zb, y_t[:batch_size], prototypes, temperature=temperature, beta=b,
                               queue_z=z_t[batch_size:], queue_y=y_t[batch_size:])
        grads.append(torch.autograd.grad(loss, zb)[0])
        zn = torch.nn.functional.normalize(zb.detach(), dim=1)
        inst = torch.exp(zn @ torch.nn.functional.normalize(z_t, dim=1).T / temperature).sum(1) - np.exp(1 / temperature)
        prot = torch.exp(zn @ torch.nn.functional.normalize(prototypes, dim=1).T / temperature).sum(1)
        proto_share.append(float((prot / (b * inst + prot)).mean()))
    change = float((grads[0] - grads[1]).norm() / grads[1].norm())
    return {"prototypes' share of D (beta=%g)" % b0: proto_share[0], "prototypes' share of D (beta=1)": proto_share[1],
            "relative gradient change, beta=%g vs 1" % b0: change}


beta_table = pd.DataFrame({"random prototypes": beta_effect(random_prototypes),
                           "prototypes on label means": beta_effect(mean_prototypes(z, y, random_prototypes))}).T
beta_table.style.format("{:.1%}")

# %% tags=["hide-input"]
col = "relative gradient change, beta=%g vs 1" % beta
display(Markdown(
    f"With random prototypes, moving β from {beta} to 1 changes the gradient by "
    f"{beta_table.loc['random prototypes', col]:.1%} of its norm; with prototypes on their labels' means, by "
    f"{beta_table.loc['prototypes on label means', col]:.1%}. The prototypes take "
    f"{beta_table.iloc[0, 0]:.1%} of the denominator in the first case and {beta_table.iloc[1, 0]:.1%} in the second "
    f"(β = {beta})."))

# %% tags=["hide-input"]
grad_means = ladder_gradients(z, y, mean_prototypes(z, y, random_prototypes))
display(Markdown("Gradient shares of the ladder with prototypes on their labels' means:"))
grad_means.style.format("{:.1%}")

# %% tags=["hide-input"]
display(Markdown(
    f"With prototypes on their labels' means, the tail's share of L_MSC's gradient is "
    f"{grad_means.loc[f'L_MSC (beta={beta:g})', 'tail']:.1%} at β = {beta} and "
    f"{grad_means.loc['L_MSC (beta=1)', 'tail']:.1%} at β = 1 (with random prototypes: "
    f"{grad_random.loc[f'L_MSC (beta={beta:g})', 'tail']:.1%} and {grad_random.loc['L_MSC (beta=1)', 'tail']:.1%})."))

# %% [markdown]
# The prototypes placed on their labels' means are a generous stand-in for trained ones: they sit
# exactly where the sample's documents of the label are, so every anchor is already close to the
# prototypes of its labels. In that regime β acts: with β = 0.1 the prototypes, one per label,
# make up most of the denominators, and the repulsion an anchor feels comes less from the many head
# documents of the batch and the queue. A larger share of the gradient on the tail does not follow
# automatically. A tail label's prototype here is the mean of very few documents, so those documents
# sit almost on it; with the prototypes taking most of the denominator, such a document's loss is
# already small and its gradient too. Whether a small β helps the tail is thus a question about
# training dynamics, not about one batch: in a real run the prototypes start random and move towards
# their documents, so β's influence grows over training rather than being fixed from the first step.
# Chapter 8 reports what the full ladder gives after training.

# %% [markdown]
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter.
#
# :::{admonition} Exercise 1: a smaller and a larger β
# Recompute the group shares of the gradient for L_MSC with β = 0.01 and β = 0.5, with the
# prototypes on their labels' means, and compare them with β = 0.1 and β = 1. Before running it,
# predict: does the tail's share move monotonically with β? Would the answer change with random
# prototypes? (The solution prints how far the tail's share moves over the four values of β.)
# :::

# %% tags=["hide-cell"]
# Solution 1: beta only matters through the prototypes' share of the denominator.
betas = (0.01, 0.1, 0.5, 1.0)
solution1 = pd.concat({
    "random": ladder_gradients(z, y, random_prototypes, betas=betas).filter(like="L_MSC", axis=0),
    "on means": ladder_gradients(z, y, mean_prototypes(z, y, random_prototypes), betas=betas).filter(like="L_MSC", axis=0),
}, names=["prototypes", "loss"])
display(solution1.style.format("{:.1%}"))
spread = solution1.groupby(level=0)["tail"].agg(lambda s: s.max() - s.min())
print(f"tail share spread over beta: {spread['random']:.2%} with random prototypes, "
      f"{spread['on means']:.2%} with prototypes on the means")

# %% [markdown]
# :::{admonition} Exercise 2: the queue's size
# The queue is the only thing separating L_Base from L_BQueue. Count the tail's attraction share
# of L_BQueue and of L_MSC with queues of 0, 128 and 512 keys (the term counts need labels only,
# so this is fast). How much of L_MSC's advantage on the tail remains without any queue?
# :::

# %% tags=["hide-cell"]
# Solution 2: the tail's attraction share against the queue size, same batches for every row.
rng2 = np.random.default_rng(seed + 1)
rows = []
for _ in range(20):
    idx = rng2.choice(len(y_all), size=batch_size + 512, replace=False)
    batch = y_all[idx[:batch_size]]
    for k in (0, 128, 512):
        queue_labels = y_all[idx[batch_size:batch_size + k]] if k else None
        for name, loss in (("L_BQueue", "base"), ("L_MSC", "msc")):
            t = analysis.term_counts(batch, loss=loss, beta=beta, queue_labels=queue_labels, groups=groups)
            rows.append({"loss": name, "queue size": k, "tail attraction share": t.loc[t["group"] == "tail",
                                                                                      "attraction_share"].sum()})
solution2 = pd.DataFrame(rows).groupby(["queue size", "loss"])["tail attraction share"].mean().unstack()
display(solution2.style.format("{:.1%}"))
print("With queue size 0, L_BQueue is L_Base; L_MSC still has its prototypes, so every tail label of an anchor "
      "keeps its 1/|y_i| share.")

# %% [markdown]
# :::{admonition} Exercise 3: β without prototypes
# :class: dropdown
# Show, without code, that for L_BQueue a weight β on every key of the denominator would leave
# every gradient unchanged.
#
# **Answer.** The force of key $k$ is $q_{ik} - a_{ik}$ with
# $q_{ik} = \beta e^{s(i,k)} / \sum_{k'} \beta e^{s(i,k')}$: β cancels, and $a_{ik}$ does not involve
# it. The loss becomes $\ell_i + \log\beta$, a constant shift with zero gradient. β needs keys
# that do not carry it, the prototypes of L_MSC, to act.
# :::

# %% [markdown]
# ## What we saw
#
# - Every contrastive loss of the paper reads $\ell_i = \log D_i - \sum_k a_{ik} s(i,k)$, and the
#   force of a key is its share of the denominator minus its attraction weight. The attraction
#   weights depend on the labels alone; the repulsion depends on the embeddings.
# - On the same batches and queues, the queue (L_Base to L_BQueue) lets anchors with rare labels
#   enter the loss, but Jaccard weights still give most of an anchor's pull to its frequent labels;
#   the per-label iteration of L_MSC is what moves attraction to the tail.

# %% tags=["hide-input"]
from abalone_core.report import prose

rho = check.loc["L_MSC: rank correlation with frequency", "value"]
display(Markdown(
    f"- L_MSC's per-anchor attraction is the mean of 1/|yᵢ| over the documents carrying the label, so "
    f"labels that come with many others get less. Frequency is not in that formula, yet on {dataset} the "
    f"attraction {prose.trend_phrase(rho)}, through the co-labels (under L_Base: "
    f"{check.loc['L_Base: rank correlation with frequency', 'value']:.2f})."))

# %% [markdown]
# - With β = 0.1, prototypes (one per label) take a fixed part of the denominator's weight, and
#   head keys a smaller one. β changes the gradients only through the prototypes: with random
#   prototypes far from the documents it barely matters; with prototypes near their documents it
#   decides how much of the repulsion comes from instances.
# - In the pre-trained space, documents of a label are only slightly closer to each other than to
#   the rest; the effect of training on these scores is the subject of chapter 7.
