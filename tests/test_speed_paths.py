"""The speed-ups (dynamic padding, length buckets, fused momentum update) leave the numbers alone."""
import numpy as np
import torch

from abalone_core.data.batching import collate
from abalone_core.evaluation.evaluate import embed
from abalone_core.method.memory import MomentumEncoder
from abalone_core.method.model import ContrastiveModel
from helpers import tiny_encoder  # 2 layers, hidden 16, vocabulary 50, no dropout, seed 0


def documents(n=24, seed=0):
    rng = np.random.default_rng(seed)
    ids = [[2] + rng.integers(5, 50, rng.integers(1, 40)).tolist() + [3] for _ in range(n)]
    labels = (rng.random((n, 4)) < 0.4).astype(np.float32)
    return ids, labels


def padded_to(items, length, pad=0):
    """Fixed padding to ``length`` tokens: the path without dynamic padding."""
    b = collate(items, pad)
    extra = length - b["input_ids"].shape[1]
    b["input_ids"] = torch.nn.functional.pad(b["input_ids"], (0, extra), value=pad)
    b["attention_mask"] = torch.nn.functional.pad(b["attention_mask"], (0, extra), value=0)
    return b


def test_bucketed_embeddings_equal_one_document_at_a_time():
    enc = tiny_encoder().eval()
    ids, _ = documents()
    fast = embed(enc, ids, pad_token_id=0, batch_size=8, progress=False)
    with torch.no_grad():
        slow = np.stack([enc.represent(torch.tensor([x]), torch.ones(1, len(x), dtype=torch.long))[0].numpy()
                         for x in ids])
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


def test_short_training_run_with_dynamic_padding_matches_fixed_padding():
    ids, labels = documents()
    items = [{"input_ids": x, "labels": torch.tensor(y), "index": i} for i, (x, y) in enumerate(zip(ids, labels))]
    losses = {}
    for mode in ("dynamic", "fixed"):
        model = ContrastiveModel(tiny_encoder(), 4, "msc", queue_size=16, momentum=0.9)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        out = []
        for start in range(0, 24, 8):
            chunk = items[start:start + 8]
            b = collate(chunk, 0) if mode == "dynamic" else padded_to(chunk, 64)
            loss = model(b["input_ids"], b["attention_mask"], b["labels"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.momentum_update()
            out.append(loss.item())
        losses[mode] = (out, model.queue.z.clone())
    np.testing.assert_allclose(losses["dynamic"][0], losses["fixed"][0], rtol=1e-4)
    torch.testing.assert_close(losses["dynamic"][1], losses["fixed"][1], rtol=1e-3, atol=1e-4)


def test_fused_momentum_update_equals_the_formula_over_many_steps():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
    key = MomentumEncoder(net, momentum=0.99)
    reference = [p.detach().clone() for p in net.parameters()]
    for _ in range(20):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        key.update(net)
        reference = [0.99 * r + 0.01 * p.detach() for r, p in zip(reference, net.parameters())]
    for r, k in zip(reference, key.module.parameters()):
        torch.testing.assert_close(k, r, rtol=1e-5, atol=1e-6)
