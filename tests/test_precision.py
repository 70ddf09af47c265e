"""Mixed precision: what ``mixed_precision: auto`` means, and a bfloat16 step against float32."""
import pytest
import torch

from abalone_core.training import devices
from abalone_core.training.config import Config

TEXTS = [
    "We need water and food in the shelter near the river, the bridge is gone.",
    "Flooding has cut the road to the hospital; several families are trapped on roofs.",
    "Please send medical supplies, many people are injured after the earthquake.",
    "The power is out across the district and the children have no clean water.",
    "Thank you to the volunteers who cleared the debris this morning.",
    "Fire spread to the market overnight, we need tents and blankets.",
    "Is there any news about the missing fishermen from the coast?",
    "Aid trucks arrived in the village but the clinic still has no medicine.",
]


def test_auto_precision_is_bf16_exactly_where_the_cpu_computes_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu) == "no"
    assert devices.autocast_for(Config(), cpu) == (devices.nullcontext, False)
    # an explicit choice is kept whatever the CPU
    assert devices.resolve_precision("bf16", cpu) == "bf16"
    assert devices.resolve_precision("no", cpu) == "no"


def test_cpu_support_comes_from_torchs_own_checks(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert devices.cpu_supports_bf16() is True
    assert devices.cpu_bf16_paths() == ["avx512_bf16"]
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert devices.cpu_bf16_paths() == ["amx", "avx512_bf16"]
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert devices.cpu_supports_bf16() is False
    assert devices.cpu_bf16_paths() == []


@pytest.mark.slow
def test_a_bfloat16_step_of_minilm_stays_close_to_float32():
    """One BCE step of the whole MiniLM classifier on a real batch: the loss within 1 % and
    every gradient within cosine 0.99 (norm within 5 %) of float32's. The loss itself is
    computed in float32 under autocast (abalone_core.method.losses)."""
    from abalone_core.method.losses import bce_loss
    from abalone_core.method.model import TextClassifier, TextEncoder, load_backbone

    torch.manual_seed(0)
    backbone, tok = load_backbone("minilm", dropout=0.0)
    model = TextClassifier(TextEncoder(backbone), num_labels=5, dropout=0.0).eval()
    batch = tok(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
    y = (torch.arange(len(TEXTS))[:, None] % torch.tensor([1, 2, 3, 4, 5]) == 0).float()

    def step(bf16: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = bce_loss(model(batch["input_ids"], batch["attention_mask"]), y)
        assert loss.dtype == torch.float32
        loss.backward()
        return loss.item(), {n: p.grad.detach().float().clone() for n, p in model.named_parameters()
                             if p.grad is not None}

    loss32, g32 = step(False)
    loss16, g16 = step(True)
    assert loss16 == pytest.approx(loss32, rel=0.01)
    flat32 = torch.cat([g.flatten() for g in g32.values()])
    flat16 = torch.cat([g16[n].flatten() for n in g32])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.99
    assert flat16.norm() == pytest.approx(flat32.norm().item(), rel=0.05)
    for name in ("classifier.weight", ):
        if name in g32:
            assert torch.nn.functional.cosine_similarity(g32[name].flatten(), g16[name].flatten(), dim=0) > 0.99


def test_a_run_under_bfloat16_trains_resumes_and_records_its_precision(tiny_config):
    from abalone_core.training.runs import run
    from abalone_core.training.run_folder import read_history

    cfg = tiny_config(objective="msc", mixed_precision="bf16", max_steps=6, eval_every=2, save_every=2)
    m = run(cfg, progress=False)
    assert m["precision"] == "bf16" and m["steps"] == 6
    hist = read_history(f"{cfg.output_dir}/history.jsonl")
    assert all(h["train_loss"] == h["train_loss"] for h in hist)  # finite, no NaN
    assert run(tiny_config(objective="bce", mixed_precision="no", output_dir=cfg.output_dir + "-32"),
               progress=False)["precision"] == "no"
