"""Partial fine-tuning: frozen bottom layers, their output cached once per document."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from abalone_core.training.layer_cache import cache_key, frozen_states
from abalone_core.method.model import ContrastiveModel, TextEncoder
from abalone_core.training.runs import run


def encoder(train_layers=None, layers=3, dropout=0.1):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    return TextEncoder(BertModel(cfg), dim=8, train_layers=train_layers)


def batch(n=5, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n)
    ids = torch.zeros(n, lengths.max(), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, k in enumerate(lengths):
        ids[i, :k] = torch.as_tensor(rng.integers(5, 50, k))
        mask[i, :k] = 1
    return ids, mask


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_split_forward_equals_the_whole_backbone(k):
    ids, mask = batch()
    full, part = encoder(None).eval(), encoder(k).eval()
    part.load_state_dict(full.state_dict())
    with torch.no_grad():
        expected = full.represent(ids, mask)
        live = part.represent(ids, mask)
        from_states = part.represent(part.frozen_states(ids, mask), mask)
    torch.testing.assert_close(live, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(from_states, live, rtol=0, atol=0)


def test_frozen_parameters_get_no_gradient_and_bottom_stays_in_eval_mode():
    enc = encoder(train_layers=1).train()
    ids, mask = batch()
    enc(ids, mask).sum().backward()
    bottom = [enc.backbone.embeddings, *enc.backbone.encoder.layer[:2]]
    for module in bottom:
        assert not module.training
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None
    top = list(enc.backbone.encoder.layer[2].parameters()) + list(enc.head.parameters())
    assert all(p.grad is not None for p in top)


def test_key_encoder_shares_the_frozen_bottom_and_copies_the_rest():
    enc = encoder(train_layers=1)
    model = ContrastiveModel(enc, num_labels=4, variant="msc", queue_size=10, momentum=0.5)
    query, key = enc, model.key_encoder.module
    assert key.backbone.embeddings.word_embeddings.weight is query.backbone.embeddings.word_embeddings.weight
    assert key.backbone.encoder.layer[2].output.dense.weight is not query.backbone.encoder.layer[2].output.dense.weight
    with torch.no_grad():
        query.backbone.encoder.layer[2].output.dense.weight.add_(1.0)
    before = key.backbone.encoder.layer[2].output.dense.weight.clone()
    model.momentum_update()
    after = key.backbone.encoder.layer[2].output.dense.weight
    torch.testing.assert_close(after, 0.5 * before + 0.5 * query.backbone.encoder.layer[2].output.dense.weight)


def test_cache_key_changes_with_every_input():
    enc = encoder(train_layers=1)
    ids = [[2, 7, 9, 3], [2, 8, 3]]
    base = cache_key(enc, ids, "minilm|64", "float16")
    assert cache_key(enc, ids, "minilm|64", "float16") == base
    assert cache_key(enc, ids, "minilm|128", "float16") != base  # max_length / tokenizer / backbone
    assert cache_key(enc, ids, "minilm|64", "float32") != base
    assert cache_key(enc, [[2, 7, 9, 3], [2, 8, 8, 3]], "minilm|64", "float16") != base
    assert cache_key(encoder(train_layers=2), ids, "minilm|64", "float16") != base  # another cut
    changed = encoder(train_layers=1)
    with torch.no_grad():
        changed.backbone.encoder.layer[0].output.dense.weight.add_(1e-3)  # other frozen weights
    assert cache_key(changed, ids, "minilm|64", "float16") != base
    trained_top = encoder(train_layers=1)
    with torch.no_grad():
        trained_top.backbone.encoder.layer[2].output.dense.weight.add_(1.0)
    assert cache_key(trained_top, ids, "minilm|64", "float16") == base  # the trainable top is not part of it


def test_states_are_cached_on_disk_and_reread(tmp_path):
    enc = encoder(train_layers=1).eval()
    ids = [[2, 7, 9, 3], [2, 8, 3], [2, 5, 6, 7, 8, 3]]
    first = frozen_states(enc, ids, "t", "float32", batch_size=2, progress=False, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    assert [s.shape for s in first] == [(4, 16), (3, 16), (6, 16)]
    files[0].write_bytes(files[0].read_bytes())  # same content, reread below
    again = frozen_states(enc, ids, "t", "float32", progress=False, cache_dir=tmp_path)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    files[0].write_bytes(b"truncated")  # a file cut short by a killed process is computed again
    third = frozen_states(enc, ids, "t", "float32", progress=False, cache_dir=tmp_path)
    for a, b in zip(first, third):
        assert torch.equal(a, b)


def _history(cfg):
    return [json.loads(l) for l in (Path(cfg.output_dir) / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", ["msc", "bce"])
def test_training_with_the_cache_equals_training_with_live_frozen_layers(tiny_config, tmp_path, objective):
    live = tiny_config(objective=objective, train_layers=1, layer_cache="off", eval_every=3,
                       output_dir=str(tmp_path / "live"))
    cached = live.replace(layer_cache="float32", output_dir=str(tmp_path / "cached"))
    a, b = run(live, progress=False), run(cached, progress=False)
    ha, hb = _history(live), _history(cached)
    assert len(ha) == len(hb) >= 2
    for x, y in zip(ha, hb):
        for key in ("train_loss", "val_loss", "val_micro_f1"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6)
    wa = torch.load(f"{live.output_dir}/checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(f"{cached.output_dir}/checkpoint.pt", weights_only=False)["model"]
    for name in wa:
        torch.testing.assert_close(wa[name].float(), wb[name].float(), rtol=1e-4, atol=1e-5)
    assert a["test"]["micro_f1"] == pytest.approx(b["test"]["micro_f1"], abs=1e-6)


def test_partial_training_resumes_from_its_checkpoint(tiny_config, tmp_path):
    cfg = tiny_config(objective="msc", train_layers=1, max_steps=6, eval_every=2, output_dir=str(tmp_path / "r"))
    expected = run(cfg, progress=False)
    again = run(cfg, progress=False)  # a finished run resumes at its last step and scores the same
    assert again["test"] == expected["test"]
