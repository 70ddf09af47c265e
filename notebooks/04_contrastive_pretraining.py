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
# # Contrastive pre-training: the four losses of Table 2
#
# Chapters 2 and 3 looked at the losses on paper and on label matrices. This chapter trains them.
# The paper {cite:p}`audibert2024abalone` builds ABALONE in four steps, its Table 2 ablation, and
# each step adds one ingredient to a supervised contrastive loss {cite:p}`khosla2020supcon`:
#
# | run | loss | queue and key encoder | prototypes | per-label iteration and β |
# |---|---|---|---|---|
# | `base` | L_Base | no | no | no |
# | `bqueue` | L_BQueue | yes | no | no |
# | `bqproto` | L_BQProto | yes | yes | no |
# | `msc` | L_MSC (ABALONE) | yes | yes | yes |
#
# You will learn
#
# - what one optimiser step of contrastive pre-training does in `abalone_core`, in order: the query
#   encoder, the momentum key encoder, the queue read before it is written, the prototypes, the loss,
#   the enqueue, the update and the momentum update;
# - how the queue works as a fixed buffer with a write pointer, and why its keys come from a slowly
#   moving copy of the encoder;
# - what each of the four losses adds, and why their values sit at different levels before any
#   training (so that their curves can be compared by shape only);
# - the cosine learning-rate schedule, why a run keeps three candidate encoders, and the rule that
#   decides whether a run has **converged** (`abalone_core.training.convergence`);
# - what partial fine-tuning (`train_layers`) and the cache of the frozen layers
#   (`abalone_core.training.layer_cache`) are, and why the book's evidence on a CPU uses them.
#
# **The runs trained here are a demonstration.** With the default `cpu` profile each run is 30
# optimiser steps on a subset of 600 disaster messages: enough to watch every part of the machinery
# move, far too little to rank the losses. The evidence about which loss is better comes from the
# committed converged grid, read in the next chapter. Run the notebook with `-p profile gpu` (see
# [Reproducing the paper](../book/reproduce.md)) for a paper-like budget.

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

# %%
import math
import time

import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import Markdown, display

from abalone_core import notebook as nb

env = nb.setup()  # first: quiet progress bars and warnings for the imports below

from abalone_core.method import losses
from abalone_core.analysis import plots
from abalone_core.training.convergence import contrastive_metric, convergence
from abalone_core.method.memory import LabelQueue, MomentumEncoder
from abalone_core.training.encoders import build_encoder
from abalone_core.training.train import make_scheduler
from abalone_core.data.run_data import load_run_dataset

chapter = nb.chapter(profile, runs_dir, dataset=dataset, backbone=backbone, max_steps=max_steps, seed=seed,
                     device=device)  # setup(), the run folder, the settings every run of the chapter shares
root, config = chapter.root, chapter.config
objectives = ["base", "bqueue", "bqproto", "msc"]
configs = {o: config(o) for o in objectives}
names = {o: nb.row_name(o) for o in objectives}  # the paper's row names: L_Base, ..., L_MSC
shown = ["dataset", "backbone", "subset", "max_length", "batch_size", "max_steps", "epochs", "temperature", "beta",
         "queue_size", "momentum", "proj_dim", "lr_backbone", "lr_head", "schedule", "train_layers"]
# the four runs differ only by their objective
pd.Series({k: str(getattr(configs["msc"], k)) for k in shown}, name="value").to_frame()

# %% [markdown]
# The four configurations are identical except for `objective`, so any difference between the runs
# comes from the loss. Two values are specific to the demonstration profile: the queue holds 128
# keys instead of the paper's 512 (a 600-document subset would otherwise be mostly queue), and the
# learning rate of the projection head and prototypes is raised to 10⁻³ so that these freshly
# initialised parts move within 30 steps.
#
# ## One step, in the order the library runs it
#
# `ContrastiveModel.forward` (in `abalone_core.method.model`) and `Trainer._step` (in
# `abalone_core.training.train`) implement one optimiser step. For a batch of $B$ documents with multi-hot
# labels $Y \in \{0,1\}^{B \times L}$:
#
# 1. **Queries.** The encoder (MiniLM here, RoBERTa in the paper) reads the tokens, takes the first
#    token's hidden state and passes it through the projection head, a two-layer MLP that maps it
#    to $z_i \in \mathbb{R}^{256}$. The loss normalises every $z_i$ to unit length, so only
#    directions matter and $z_i^\top z_k$ is a cosine.
# 2. **Keys.** Where the loss uses a queue, the *key encoder*, a copy of the encoder, computes the
#    same batch's projections $k_i$ without gradient.
# 3. **The loss** compares each anchor $z_i$ with its keys $H$: the other queries of the batch,
#    then the queue's stored keys *as they were before this step*, then the $L$ prototypes. Reading
#    the queue before writing to it matters: a document must not meet its own key.
# 4. **Enqueue.** Once the loss is computed, the batch's keys $k_i$ and their labels overwrite the
#    oldest slots of the queue, ready for the next step.
# 5. **Backward and update.** AdamW updates the encoder with `lr_backbone` and the head and
#    prototypes with `lr_head` (two parameter groups, `abalone_core.training.train.param_groups`), after the
#    gradient norm is clipped to 1. The scheduler then sets the next learning rate.
# 6. **Momentum update.** The key encoder moves a small step towards the updated encoder,
#    $\theta_k \leftarrow m\,\theta_k + (1-m)\,\theta$.
#
# L_Base skips steps 2, 4 and 6: its only keys are the other documents of the batch. The next
# cells take the two data structures apart on toy sizes.
#
# ### The queue is a ring buffer with a pointer
#
# `LabelQueue` holds $K$ slots of projections and labels, a pointer `ptr` to the next slot to write
# and a `count` of filled slots. Enqueueing writes at `ptr` and moves it forward modulo $K$, so once
# the queue is full every new batch overwrites the oldest keys. Empty slots are never returned:
# at the start of training the loss sees fewer keys than $K$, never fake ones.

# %%
queue = LabelQueue(size=5, dim=2, num_labels=3)
for step in range(4):
    batch_keys = torch.full((2, 2), float(step))            # two keys per "step", valued by the step
    batch_labels = torch.eye(3, dtype=torch.uint8)[[step % 3, (step + 1) % 3]]
    queue.enqueue(batch_keys, batch_labels)
    keys, key_labels = queue.keys()
    print(f"after step {step}: ptr={int(queue.ptr)}, count={int(queue.count)}, "
          f"keys oldest first come from steps {keys[:, 0].int().tolist()}")

# %% [markdown]
# After the third step the five slots are full and the pointer wraps around: step 3's keys
# replace those of step 0 and part of step 1. With the paper's $K = 512$ and $B = 32$, a key
# stays in the queue for $512 / 32 = 16$ steps; in the demonstration ($K = 128$) for 4 steps.
# The queue is what chapter 2 asked for: $K$ extra keys for the price of a stored vector each,
# no forward or backward pass through the encoder.
#
# ### Why the keys come from a momentum encoder
#
# A key written 16 steps ago was computed by the encoder as it was 16 steps ago. If the encoder
# changed fast, old and new keys would live in different spaces and the comparison would be
# meaningless. MoCo's remedy {cite:p}`he2020moco` is to compute keys with a separate encoder whose
# weights follow the trained one slowly: with $m = 0.999$ each update moves the key weights 0.1 %
# of the way towards the query weights. `MomentumEncoder` does exactly this, in place and without
# gradient; its weights are never seen by the optimiser.

# %%
torch.manual_seed(seed)
query_net = torch.nn.Linear(3, 1, bias=False)
key_net = MomentumEncoder(query_net, momentum=0.9)
with torch.no_grad():
    query_net.weight.add_(1.0)                              # pretend an optimiser step moved the encoder by 1
for step in range(1, 4):
    key_net.update(query_net)
    gap = (query_net.weight - key_net.module.weight).abs().mean().item()
    print(f"after {step} momentum update(s): the key weights are {gap:.3f} behind (0.9^{step} = {0.9 ** step:.3f})")

# %% [markdown]
# The gap shrinks by a factor $m$ at each update, so the key encoder is an exponential moving
# average of the encoder's recent history, with a memory of about $1/(1-m)$ steps. That memory
# should be comparable to the time a key spends in the queue. Exercise 2 shows what this means
# for a 30-step demonstration: with $m = 0.999$ the key encoder has hardly left its starting point
# when the run ends, which is why the converged grid uses $m = 0.99$ over its 800 steps (1600 on
# FOLDOC). The price of that memory shows up again below, in what "converged" means.
#
# ## The four losses on one batch
#
# All four losses have the same shape. For an anchor $i$ and a key $k$,
#
# $$ \log p_{ik} = \frac{z_i^\top z_k}{\tau} - \log \sum_{l \in H \setminus \{i\}} g_l
#    \exp\!\Big(\frac{z_i^\top z_l}{\tau}\Big), $$
#
# and the loss of the anchor is a weighted average of $-\log p_{ik}$ over its positives. What
# changes from row to row is the set $H$, the weights $g_l$ in the denominator and the weights of
# the positives:
#
# - **L_Base**: $H$ is the batch; a positive $k$ weighs its Jaccard similarity
#   $|y_i \cap y_k| / |y_i \cup y_k|$ with the anchor, and every $g_l = 1$. An anchor with no
#   positive in the batch is left out.
# - **L_BQueue** adds the queue's keys to $H$. Nothing else changes, but chapter 2 showed how much
#   more often a tail label then finds a positive.
# - **L_BQProto** adds one trainable prototype $c_c$ per label to $H$, with label set $\{c\}$.
#   Every anchor now has a positive for each of its labels, and the prototypes are pulled
#   towards the documents of their label.
# - **L_MSC** iterates over the anchor's labels: for each label $c$, its positives are the keys
#   carrying $c$ plus the prototype $c_c$, so a tail label gets its own attraction term instead of
#   being drowned in the Jaccard average. In the denominator every instance key weighs
#   $g_l = \beta = 0.1$ and every prototype 1: repulsion between documents, most of which comes
#   from the keys of head labels (chapter 3 counts it; the cell after the next one counts it on
#   this batch), is turned down, while the pull towards the right prototypes and away from the
#   wrong ones is kept.
#
# The cell below computes the four losses on one batch of 32 real label rows of the demonstration
# subset, with a queue of 128 further rows and random projections, exactly as the model would call
# `abalone_core.method.losses.contrastive_loss` at initialisation.

# %%
train_labels = torch.as_tensor(load_run_dataset(configs["msc"]).split("train").labels, dtype=torch.float32)
train_labels = train_labels[train_labels.sum(1) > 0]        # contrastive training keeps labelled documents
B, K, L = configs["msc"].batch_size, configs["msc"].queue_size, train_labels.shape[1]
y, queue_y = train_labels[:B], train_labels[B:B + K]
gen = torch.Generator().manual_seed(seed)
z, queue_z, prototypes = (torch.randn(n, 256, generator=gen) for n in (B, K, L))


def four_losses(z, y, queue_z, queue_y, prototypes, beta=0.1, temperature=0.1):
    """The Table 2 losses of one batch: each variant gets only the ingredients it uses."""
    use = {"base": {}, "bqueue": {"queue_z": queue_z, "queue_y": queue_y},
           "bqproto": {"queue_z": queue_z, "queue_y": queue_y, "prototypes": prototypes},
           "msc": {"queue_z": queue_z, "queue_y": queue_y, "prototypes": prototypes}}
    return {v: losses.contrastive_loss(z, y, variant=v, temperature=temperature, beta=beta, **kw).item()
            for v, kw in use.items()}


M = B - 1 + K                                               # instance keys of an anchor: batch + queue
chance = {"base": math.log(B - 1), "bqueue": math.log(M), "bqproto": math.log(M + L),
          "msc": math.log(0.1 * M + L)}
at_init = pd.DataFrame({"loss on random projections": four_losses(z, y, queue_z, queue_y, prototypes),
                        "log of the weighted number of keys": chance})
at_init.index = [names[o] for o in at_init.index]
at_init.round(2)

# %% tags=["hide-input"]
from abalone_core import analysis
from abalone_core.report import prose
from abalone_core.evaluation.metrics import frequency_groups

label_groups = frequency_groups(train_labels.sum(0).numpy())
keys = analysis.term_counts(y.numpy().astype(int), loss="base", queue_labels=queue_y.numpy().astype(int),
                            groups=label_groups)
key_shares = keys.groupby("group")["repulsion_from_share"].sum()
display(Markdown(f"On this batch and its queue, {prose.largest_share(key_shares.to_dict(), 'the denominator of L_BQueue')}; "
                 f"medium keys carry {key_shares.get('medium', 0):.0%}. That is the repulsion β turns down."))

# %% [markdown]
# The right column explains the left one. With random projections every cosine is close to 0, so
# every key gets about the same probability, $1 / \sum_l g_l$, and whatever the weights of the
# positives the loss is about $\log \sum_l g_l$: the logarithm of the weighted number of keys. L_Base
# has 31 keys, L_BQueue 159, L_BQProto 159 + 33 prototypes, and L_MSC weighs its 159 instance keys
# by β = 0.1 and its 33 prototypes by 1, about 49 keys in all. (The actual values sit a little
# above because random cosines are not exactly 0, and a spread of logits raises a log-sum-exp.)
#
# This is why **the levels of the four training curves cannot be compared**: a starting value near
# 3.9 for L_MSC and near 5.3 for L_BQProto says nothing about which representation is better; they are
# different functions with different minima. What can be compared is how far each curve falls
# from its own starting level, and whether it has stopped falling. One more detail shapes the start
# of the curves: the queue is empty at the first step and fills over four, so the first training
# point of the three losses with a queue averages some steps with fewer keys, hence a lower loss.

# %% [markdown]
# ## L_MSC from scratch
#
# The library's `losses.msc_loss` is vectorised and guarded (it refuses NaN, runs in float32 under
# mixed precision, never builds a $B \times |H| \times L$ tensor). The formula itself is short.
# For an anchor $i$ with labels $y_i$, keys $H$ (the other documents of the batch, then the queue)
# and prototypes $c_1, \dots, c_L$, with $s(i,l) = z_i^\top z_l / \tau$ on unit vectors:
#
# $$ \log p_{il} = s(i,l) - \log\Big(\beta \sum_{k \in H, k \ne i} e^{s(i,k)} + \sum_{c} e^{s(i,c_c)}\Big), $$
#
# $$ \ell_i = -\frac{1}{|y_i|} \sum_{c \in y_i} \frac{1}{N(i,c)} \Big( \sum_{l \in H,\, l \ne i,\, y_{lc}=1}
#    \frac{\log p_{il}}{|y_i \cup y_l|} + \log p_{i c_c} \Big), \qquad
#    N(i,c) = \sum_{l \in H,\, l \ne i,\, y_{lc}=1} \frac{1}{|y_i \cup y_l|} + 1, $$
#
# and $\mathcal{L}_{MSC}$ is the mean of $\ell_i$ over the anchors with at least one label. Written
# with loops, one anchor and one label at a time, it reads as follows; the cell checks it against
# the library on the real batch of label rows above, with random projections, queue and prototypes.


# %%
def msc_from_scratch(z, y, prototypes, queue_z, queue_y, temperature=0.1, beta=0.1):
    """L_MSC with plain loops: z (B, D), y (B, L), prototypes (L, D), queue_z (K, D), queue_y (K, L)."""
    unit = torch.nn.functional.normalize
    keys_z = unit(torch.cat([z, queue_z]), dim=1)             # H: the batch, then the queue
    keys_y = torch.cat([y, queue_y])
    protos = unit(prototypes, dim=1)
    anchors = unit(z, dim=1)
    per_anchor = []
    for i in range(len(z)):
        labels = torch.nonzero(y[i]).flatten()
        if len(labels) == 0:
            continue                                           # an anchor without labels is left out
        s_keys = keys_z @ anchors[i] / temperature             # s(i, l) for every key
        s_protos = protos @ anchors[i] / temperature           # s(i, c_c) for every prototype
        others = torch.arange(len(keys_z)) != i                # the anchor is not its own key
        log_denominator = torch.log(beta * s_keys[others].exp().sum() + s_protos.exp().sum())
        total = 0.0
        for c in labels:
            positives = others & (keys_y[:, c] == 1)
            union = ((keys_y[positives] + y[i]) > 0).sum(1)    # |y_i ∪ y_l| of each positive
            f = 1.0 / union
            n = f.sum() + 1.0                                  # N(i, c): the prototype counts 1
            attract = (f * (s_keys[positives] - log_denominator)).sum() + (s_protos[c] - log_denominator)
            total = total + attract / n
        per_anchor.append(-total / len(labels))
    return torch.stack(per_anchor).mean()


by_hand = msc_from_scratch(z, y, prototypes, queue_z, queue_y)
library = losses.msc_loss(z, y, prototypes, temperature=0.1, beta=0.1, queue_z=queue_z, queue_y=queue_y)
torch.testing.assert_close(by_hand, library, rtol=1e-5, atol=1e-5)
print(f"L_MSC on one batch of {B} real label rows (queue {K}, {L} prototypes): from scratch {by_hand.item():.6f}, "
      f"abalone_core.method.losses.msc_loss {library.item():.6f}")

# %% [markdown]
# ## The learning-rate schedule
#
# Contrastive runs use a **cosine schedule with warm-up** {cite:p}`loshchilov2017sgdr` (`schedule:
# auto` resolves to cosine for them, linear for supervised runs). During the first 5 % of the steps
# the learning rate rises linearly from 0 to its peak, so that the first updates, made while the
# freshly initialised head and prototypes send large and arbitrary gradients, are small. Then it
# follows half a cosine down to 0, $\eta_t = \eta_{\max} \cdot \tfrac12\big(1 + \cos(\pi\,
# \tfrac{t - t_w}{T - t_w})\big)$: it stays near the peak for a while, then decreases fastest in the
# middle, and spends the last steps at small rates where the weights settle. The schedule is
# stretched to the run's budget $T$, so a 30-step run and a 400-step run go through the same shape.

# %%
def schedule(cfg, total_steps):
    """Learning rate multiplier at each step of a run of ``total_steps`` (the trainer's scheduler)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, cfg, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


grid = nb.grid_settings("cpu_converged")                    # the settings of the committed grid
per_dataset = {d: nb.grid_settings("cpu_converged", dataset=d)["max_steps"] for d in ("disaster", "foldoc")}
demo_steps = configs["msc"].max_steps or grid["max_steps"]  # the gpu profile sets epochs instead of steps
budgets = {f"this chapter's runs ({demo_steps} steps)": demo_steps,
           **{f"converged grid, {d} ({n} steps)": n for d, n in per_dataset.items()}}
curves = pd.concat([pd.DataFrame({"share of the run": np.arange(n) / n,
                                  "learning rate / peak": schedule(configs["msc"], n), "budget": label})
                    for label, n in budgets.items()])
fig = px.line(curves, x="share of the run", y="learning rate / peak", color="budget", template="plotly_white",
              title="Cosine schedule with 5 % warm-up")
fig.update_xaxes(tickformat=".0%")
fig.show()

# %% [markdown]
# ## Training (a demonstration)
#
# `nb.run_or_load` trains a run, or reads its `metrics.json` when the same configuration already
# finished (a run stopped half-way resumes from its checkpoint). Each run pre-trains the encoder
# with its loss, evaluating the contrastive loss on the labelled validation documents every 10
# steps, then linear-evaluates its candidate encoders (next section and chapter 5).

# %% [markdown]
# On a GPU (Colab, or your own), the next cell first times 20 optimiser steps on your device and
# says how long this chapter's four runs and one run of the paper-sized profile (`--profile gpu`:
# RoBERTa, the whole splits, 20 epochs) will take there.

# %% tags=["hide-input"]
paper_sized = nb.config_for("gpu", "msc", runs_dir=root / "timing", device=device)
display(Markdown(nb.device_timing(configs, paper_config=paper_sized, steps=20)))

# %%
metrics, timing = {}, {}
for o, cfg in configs.items():
    t0 = time.perf_counter()
    metrics[o] = nb.run_or_load(cfg)
    timing[o] = time.perf_counter() - t0
pd.DataFrame({names[o]: {"steps": int(m["steps"]), "training seconds": round(m["train_seconds"]),
                         "this call (s)": round(timing[o]), "selected encoder": m["selected_candidate"],
                         "train documents": int(m["n_documents"]["train"])} for o, m in metrics.items()}).T

# %% [markdown]
# ## Three candidate encoders
#
# Which encoder of a run should be evaluated? The last one is the obvious choice, but a contrastive
# loss can keep falling on the training set while the representation stops improving or even
# worsens for the labels. The paper therefore keeps three candidates: the encoder after the last
# step, the one with the lowest training loss (as measured at the evaluation points) and the one
# with the lowest **validation** loss. Each is linear-evaluated, and the run reports the candidate
# whose probe reaches the best *validation* micro-F1 (`Trainer.final_metrics`). The choice is made
# on validation only; the test column below is shown to see how much the choice matters, never to
# make it. Two candidates with identical weights (the last step was also the best) are evaluated
# once.
#
# The converged grid keeps only the lowest-validation-loss encoder (`candidates: [best_val_loss]`).
# Each extra candidate costs a linear evaluation on the whole splits, about as long as the training
# itself on a CPU, so the grid saves two per run. The validation loss is the natural single choice:
# it is the quantity the run optimises, measured on documents the encoder was not trained on, and
# unlike the training loss it is not biased by a queue that is still filling (see the curves
# below).

# %% tags=["hide-input"]
candidates = pd.DataFrame([{"run": names[o], "candidate": c, "validation micro-F1": v["validation_micro_f1"],
                            "test micro-F1": v["test_micro_f1"], "selected": c == m["selected_candidate"]}
                           for o, m in metrics.items() for c, v in m.get("candidates", {}).items()])
if len(candidates):
    display(candidates.set_index(["run", "candidate"]).round(1))
    alike = [r for r, part in candidates.groupby("run", sort=False) if part["validation micro-F1"].nunique() == 1]
    display(Markdown(f"In {len(alike)} of {candidates['run'].nunique()} runs every candidate gives the same validation "
                     "micro-F1: with a budget this short the last evaluation is usually also the one with the lowest "
                     "training and validation loss, and the candidates are then most likely one and the same encoder."
                     if alike else "Every run's candidates differ on validation micro-F1."))

# %% [markdown]
# ## Training curves
#
# Each point of `history.jsonl` is one evaluation: the mean training loss since the previous point,
# and the contrastive loss on the labelled validation documents. Colours follow the book's
# convention, one per loss. Read the curves with the previous section in mind: each loss starts
# near the logarithm of its own weighted number of keys, so compare shapes (how far and how fast
# each one falls) and never levels. The training curve is noisier than the validation curve: it
# averages ten batches, while the validation loss is computed on the same documents every time.
#
# The queue leaves one trace in the training curve. The first point of a loss with a queue averages
# steps taken while the queue was still filling, with fewer keys and hence a lower loss. Its training
# curve can therefore *rise* at first, and the "lowest training loss" candidate of the previous
# section can point at an early encoder for a reason that has nothing to do with its quality. The
# validation loss, computed with the queue as it stands at each evaluation, does not have this bias.

# %%
history = pd.concat([nb.history(cfg.output_dir).assign(run=names[o]) for o, cfg in configs.items()])
for column, title in (("train_loss", "Training loss (mean since the previous evaluation)"),
                      ("val_loss", "Validation loss")):
    if column in history:
        fig = plots.training_curves(history, x="step", y=column, title=title)
        fig.update_layout(xaxis_title="optimiser step", yaxis_title="contrastive loss")
        plots.color_by_loss(fig).show()

# %% tags=["hide-input"]
drop = {run: (h["val_loss"].iloc[0] - h["val_loss"].min()) / h["val_loss"].iloc[0]
        for run, h in history.sort_values("step").groupby("run", sort=False) if "val_loss" in h}
first_step = int(history["step"].min())
lowest_train = {run: int(h.loc[h["train_loss"].idxmin(), "step"]) for run, h in history.groupby("run", sort=False)}
display(Markdown(f"Relative fall of the validation loss from the first evaluation (step {first_step}) to the lowest: "
                 + ", ".join(f"{r} {v:.1%}" for r, v in drop.items()) + ". The lowest training loss is at step "
                 + ", ".join(f"{s} for {r}" for r, s in lowest_train.items()) + "."))

# %% [markdown]
# ## What "converged" means
#
# A short run has not learned what its loss could teach it, and comparing two losses before both
# have converged compares their speeds, not their end points. The book decides convergence with
# one written rule, `abalone_core.training.convergence.convergence`, applied to every run and stored in its
# `metrics.json`: split the budget at 75 %, take the best validation loss before the cut and the
# best in the last quarter. The run has **converged** when the last quarter improved the best loss
# by less than 1 % (relative). For runs that train a classifier, the same rule applies to
# validation micro-F1 with a tolerance of 0.5 points. When the history has no evaluation on one
# side of the cut, the rule answers "cannot tell" (None), never "yes".
#
# The rule is deliberately simple. It does not claim that the loss could not fall further with a
# larger budget; it says that, within the budget given, the last quarter bought almost nothing, so
# the run's end point is a fair stand-in for what this loss reaches with this budget.
#
# **Which validation loss.** The training loss of L_BQueue, L_BQProto and L_MSC contrasts each
# anchor with the queue, and the queue's keys come from the momentum encoder, which trails the
# encoder by about $1/(1-m)$ steps. At the end of a run the cosine schedule has stopped the
# encoder, but the key encoder is still catching up, so the validation loss computed against the
# queue keeps falling for about $1/(1-m)$ more steps without the encoder learning anything. In
# an 800-step pilot on FOLDOC ($m = 0.99$) L_MSC's validation loss still fell 1.5 % between steps
# 700 and 800, while the learning rate was below $2 \times 10^{-6}$ and L_Base, which has no
# queue, stayed flat (`results/cpu_converged/README.md`). So every validation pass records two
# losses (`ContrastiveModel.validation_losses`): `val_loss`, the training loss, which selects the
# checkpoint, and `val_loss_in_batch`, the same loss with the batch's own keys and the prototypes
# but without the queue. The second depends on the current encoder alone, and it is the one the
# rule judges (`contrastive_metric` picks it). For L_Base the two are equal.

# %%
judged = pd.DataFrame({names[o]: convergence(hist, metrics[o]["steps"], contrastive_metric(hist))
                       for o, cfg in configs.items()
                       for hist in [nb.history(cfg.output_dir).to_dict("records")]}).T
judged[["metric", "evaluations", "improvement", "tolerance", "converged"]].style.format(
    {"evaluations": "{:.0f}", "improvement": "{:.2%}", "tolerance": "{:.0%}"}, na_rep="")

# %% tags=["hide-input"]
last = {names[o]: nb.history(cfg.output_dir).iloc[-1] for o, cfg in configs.items()}
pairs = [f"{r} {h['val_loss']:.3f} with the queue, {h['val_loss_in_batch']:.3f} in-batch"
         if h["val_loss"] != h["val_loss_in_batch"] else f"{r} {h['val_loss']:.3f} (no queue: one loss)"
         for r, h in last.items() if pd.notna(h.get("val_loss_in_batch"))]
if pairs:
    display(Markdown(
        "At the last evaluation of the demonstration, the two validation losses are: " + "; ".join(pairs)
        + ". With a queue they differ in level, because the queue adds keys to every denominator (chapter 2): "
          "only the change of each over the last quarter matters to the rule, never their levels."))

# %% tags=["hide-input"]
yes = [r for r, v in judged["converged"].items() if v is True]
steps = int(metrics["msc"]["steps"])
n_last = int((nb.history(configs["msc"].output_dir)["step"] > 0.75 * steps).sum())
display(Markdown(
    f"In the demonstration {len(yes)} of {len(judged)} runs pass the rule"
    + (f" ({', '.join(yes)})" if yes else "")
    + f". The last quarter of the {steps} steps holds {n_last} evaluation{'s' if n_last != 1 else ''}, so the verdict "
      "rests on very few numbers. Moreover the cosine schedule brings the learning rate close to 0 in the last "
      "quarter, so a short run can stop improving because it stopped moving, not because it reached what its loss "
      "can teach: the demonstration is not evidence, whatever the rule says."))

# %% [markdown]
# ## Training only the top layers, and caching the rest
#
# Training the whole encoder is what the paper does on a GPU. On a CPU a step of MiniLM with batch
# 32 costs a forward and a backward pass through all six transformer layers, and 800 steps on the
# whole disaster corpus for five seeds of several losses would take days. `Config.train_layers`
# offers a middle way: with `train_layers = k`, the embeddings and the bottom $6 - k$ layers are
# frozen and only the top $k$ layers, the projection head (and the prototypes) train. The
# converged grid uses $k = 1$, which makes a step about seven times cheaper than training the
# whole encoder (`benchmarks/bench_step.py`; $k = 2$ is about three times cheaper).
#
# Freezing alone saves the backward pass through the frozen part. The larger saving comes from
# noticing that a frozen bottom gives **the same output for a document at every step**. So
# `abalone_core.training.layer_cache` computes the bottom's hidden states once per document (the first run
# on a dataset does it; the file is keyed by the backbone, tokenizer, `max_length`, the cut, the
# storage precision, the frozen weights and the token ids, so any change makes a new file) and
# stores them in float16. Training, validation, the momentum key encoder and the linear probe then
# run only the top $k$ layers on these stored states. A step becomes several times cheaper, and
# the key encoder shares the frozen bottom instead of copying it.
#
# The price is expressiveness: the bottom layers keep their pre-trained features, so the loss can
# only reshape what the top layers and the head make of them. This is a *different experiment*
# from the paper's full fine-tuning, which is why the book states `train_layers` beside every
# result, and why its CPU evidence compares the losses with each other under the same setting,
# never with the paper's values.

# %%
def trainable(cfg):
    encoder, _ = build_encoder(cfg)
    total = sum(p.numel() for p in encoder.parameters())
    train = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    return {"parameters": total, "trained": train, "share trained": train / total}


pd.DataFrame({"whole encoder (this demonstration, the paper)": trainable(configs["msc"]),
              f"train_layers = {grid['train_layers']} (the converged grid)":
                  trainable(configs["msc"].replace(train_layers=grid["train_layers"]))}).T \
    .style.format({"parameters": "{:,.0f}", "trained": "{:,.0f}", "share trained": "{:.0%}"})

# %% [markdown]
# ## What a run directory holds
#
# `config.yaml` (the full configuration), `history.jsonl` (the curves above), `checkpoint.pt`
# (model, momentum encoder, queue, optimiser, scheduler and random states: everything needed to
# resume a run exactly), the candidate encoders `encoder_*.pt` and `metrics.json` (final scores,
# the convergence verdict, timings, hardware).

# %%
listing = pd.concat([nb.checkpoints(cfg.output_dir).assign(run=names[o]) for o, cfg in configs.items()])
listing = listing[~listing["file"].str.startswith(".")]   # the lock file of a run in progress
listing.pivot(index="file", columns="run", values="MB").round(1)

# %% [markdown]
# The scores of the linear evaluation of these runs, and the converged grid that says which loss
# is better, are the subject of the next chapter.
#
# ## Exercises
#
# Each solution is a code cell hidden behind a toggle; it runs with the rest of the chapter in a
# few seconds, on the tensors and runs built above.
#
# :::{admonition} Exercise 1: change β
# Predict, with the "weighted number of keys" argument, the value of L_MSC at initialisation for
# β = 0.1, 0.5 and 1 on the batch above, then compute it. Is L_MSC with β = 1 the same loss as
# L_BQProto? Why not?
# :::

# %% tags=["hide-cell"]
# Solution 1: beta only weighs the instance keys of the denominator.
solution1 = pd.DataFrame({beta: {"predicted": math.log(beta * M + L),
                                 "L_MSC": four_losses(z, y, queue_z, queue_y, prototypes, beta=beta)["msc"],
                                 "L_BQProto": four_losses(z, y, queue_z, queue_y, prototypes, beta=beta)["bqproto"]}
                          for beta in (0.1, 0.5, 1.0)}).T
solution1.index.name = "β"
display(solution1.round(3))
same = abs(solution1.loc[1.0, "L_MSC"] - solution1.loc[1.0, "L_BQProto"]) < 1e-6
print(f"At beta = 1, L_MSC = {solution1.loc[1.0, 'L_MSC']:.3f} and L_BQProto = {solution1.loc[1.0, 'L_BQProto']:.3f}: "
      + ("the same value on this batch." if same else
         "close, because at initialisation every key is about equally likely whatever the weights of the positives, "
         "but not the same function: L_MSC averages one term per label of the anchor (each with its own positives "
         "and prototype), L_BQProto one Jaccard-weighted average over all positives. Beta does not touch L_BQProto."))

# %% [markdown]
# :::{admonition} Exercise 2: queue size and momentum
# For the demonstration ($K = 128$, $m = 0.999$, 30 steps) and the converged grid ($K = 512$,
# $m = 0.99$, 800 steps on disaster), both with batches of 32: after how many steps is the queue full, how many
# steps does a key stay in it, and what weight $m^n$ does the key encoder still give to its
# initial weights at the end of the run? Check $m^n$ with a `MomentumEncoder` on a tiny layer.
# :::

# %% tags=["hide-cell"]
# Solution 2: arithmetic, then a check of m**n on a tiny module.
def left_of_start(momentum, steps):
    start = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(start.weight)
    key = MomentumEncoder(start, momentum)
    target = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.ones_(target.weight)
    for _ in range(steps):
        key.update(target)                                  # the query encoder sits at 1, the keys started at 0
    return 1 - key.module.weight.mean().item()              # weight still on the start


settings = {"demonstration": (128, 0.999, 30), "converged grid": (512, grid["momentum"], per_dataset["disaster"])}
solution2 = pd.DataFrame({name: {"steps to fill the queue": math.ceil(k / 32), "steps a key stays": k // 32,
                                 "m^n": m ** n, "measured": left_of_start(m, n)}
                          for name, (k, m, n) in settings.items()}).T
display(solution2.style.format({"steps to fill the queue": "{:.0f}", "steps a key stays": "{:.0f}",
                                "m^n": "{:.3f}", "measured": "{:.3f}"}))
demo, kept = solution2.loc["demonstration", "measured"], solution2.loc["converged grid", "measured"]
print(f"With m = 0.999 the key encoder of a 30-step run is still {demo:.0%} its initial weights: the queue's keys "
      f"barely follow the encoder. m = {grid['momentum']} over {per_dataset['disaster']} steps keeps {kept:.2%} "
      "of the start.")

# %% [markdown]
# :::{admonition} Exercise 3: when does the rule say converged?
# A validation loss follows $\ell(t) = 1 + 4\,e^{-t/s}$ over a 400-step run evaluated every 80
# steps. For which time scales $s$ does `convergence` call the run converged? Express the answer as
# a share of the budget, and say what it means for a loss that learns slowly.
# :::

# %% tags=["hide-cell"]
# Solution 3: the rule applied to synthetic curves.
rows = []
for s in (20, 40, 60, 80, 120, 200):
    hist = [{"step": t, "val_loss": 1 + 4 * math.exp(-t / s)} for t in range(80, 401, 80)]
    verdict = convergence(hist, 400, "val_loss")
    rows.append({"time scale s (steps)": s, "share of the budget": s / 400,
                 "last-quarter improvement": verdict["improvement"], "converged": verdict["converged"]})
solution3 = pd.DataFrame(rows)
display(solution3.style.format({"share of the budget": "{:.0%}", "last-quarter improvement": "{:.2%}"}))
ok, not_ok = solution3[solution3["converged"] == True], solution3[solution3["converged"] == False]  # noqa: E712
if len(ok) and len(not_ok):
    print(f"Converged up to s = {ok['time scale s (steps)'].max()} steps ({ok['share of the budget'].max():.0%} of "
          f"the budget), not from s = {not_ok['time scale s (steps)'].min()} on: a loss that learns more slowly "
          "is still improving by more than 1 % in the last quarter, and the rule asks for a larger budget before "
          "it is compared with the others.")

# %% [markdown]
# ## What we saw
#
# - One step of contrastive pre-training encodes the batch, computes keys with a momentum copy of
#   the encoder, scores the anchors against the batch, the queue *before* it is updated and the
#   prototypes, writes the new keys over the oldest ones, updates the weights and moves the key
#   encoder a share $1-m$ of the way towards them.
# - The queue is a ring buffer with a pointer; the momentum encoder keeps its keys comparable. Both
#   exist to give every anchor many keys for the price of stored vectors.
# - The four losses of Table 2 add, in turn, the queue, the prototypes and the per-label form with
#   β. At initialisation each sits near the logarithm of its weighted number of keys, so their
#   curves are compared by shape, never by level.
# - The cosine schedule with warm-up has the same shape for any budget; a run keeps three candidate
#   encoders in the paper's protocol, one (lowest validation loss) in the converged grid.
# - "Converged" is a written rule: less than 1 % improvement of the best validation loss in the last
#   quarter of the budget, judged on the loss with in-batch keys, which the momentum encoder's lag
#   cannot move. The 30-step runs of this chapter are a demonstration; the evidence is the
#   converged grid, which trains the top layer of MiniLM on cached frozen layers so that 800 steps
#   (1600 on FOLDOC) on the whole corpora fit on a CPU.
