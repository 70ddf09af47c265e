"""The trained part of a one-layer run shipped as a small file (chapter 7's converged encoders)."""
import json
from pathlib import Path

import numpy as np
import pytest

from abalone_core.training.encoders import build_encoder, export_trained, load_exported, load_run_encoder
from abalone_core.errors import RunFolderError
from abalone_core.evaluation.evaluate import embed
from abalone_core.data.run_data import prepare_data
from abalone_core.training.runs import run
from helpers import save_tiny_backbone


@pytest.fixture
def one_layer_run(tiny_config):
    cfg = tiny_config(objective="msc", train_layers=1, max_steps=4, eval_every=2, candidates=["best_val_loss"],
                      lr_backbone=3e-2)  # large steps: the trained layer moves well away from the pre-trained one
    run(cfg, progress=False)
    return cfg


def test_the_shipped_part_gives_the_run_encoders_representations(one_layer_run, tmp_path):
    path = tmp_path / "shipped" / "msc.pt"
    meta = export_trained(one_layer_run.output_dir, path, record={"git_revision": "abc"})
    encoder, tokenizer, cfg, loaded_meta = load_exported(path)
    original, _, _ = load_run_encoder(one_layer_run.output_dir)
    data = prepare_data(cfg, tokenizer)
    shipped = embed(encoder, data.ids["test"], data.pad_token_id, progress=False)
    reference = embed(original, data.ids["test"], data.pad_token_id, progress=False)
    untrained = embed(build_encoder(cfg)[0].eval(), data.ids["test"], data.pad_token_id, progress=False)
    # float16 keeps about three significant digits of each trained weight; training moved far more
    assert np.abs(shipped - reference).max() < 1e-2 * np.abs(reference).max()
    assert np.abs(untrained - reference).max() > 1e-1 * np.abs(reference).max()
    assert loaded_meta == meta and meta["record"] == {"git_revision": "abc"} and meta["train_layers"] == 1
    assert meta["dtype"] == "float16" and meta["objective"] == "msc"
    # only the trained part travels: the top layer, pooling and head, not the frozen bottom
    frozen = sum(p.numel() for p in original.parameters() if not p.requires_grad)
    assert 0 < meta["parameters"] < sum(p.numel() for p in original.parameters()) - frozen + 1
    assert path.stat().st_size < 2 * 2 * meta["parameters"] + 50_000


def test_a_changed_file_or_another_backbone_is_refused(one_layer_run, tmp_path):
    path = tmp_path / "msc.pt"
    export_trained(one_layer_run.output_dir, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    (tmp_path / "other_bert").mkdir()
    other = save_tiny_backbone(tmp_path / "other_bert", seed=1)  # same architecture, other weights
    moved = dict(meta, config=dict(meta["config"], backbone=other))
    path.with_suffix(".json").write_text(json.dumps(moved))
    with pytest.raises(ValueError, match="trained on top of another"):
        load_exported(path)
    path.with_suffix(".json").write_text(json.dumps(meta))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(RunFolderError, match="does not match the sha256"):
        load_exported(path)


def test_a_whole_encoder_run_is_not_exported(tiny_config, tmp_path):
    cfg = tiny_config(objective="base", max_steps=2, eval_every=2, candidates=["best_val_loss"])
    run(cfg, progress=False)
    with pytest.raises(ValueError, match="trains the whole encoder"):
        export_trained(cfg.output_dir, tmp_path / "base.pt")
    assert not (tmp_path / "base.pt").exists()


def test_the_chapter_finds_the_shipped_encoders_and_embeds_them_with_the_pretrained_backbone(one_layer_run, tmp_path):
    from abalone_core import notebook as nb

    results = tmp_path / "results"
    export_trained(one_layer_run.output_dir, results / "grid" / "encoders" / "msc.pt")
    files = nb.shipped_encoders("grid", dataset=one_layer_run.dataset, results=results)
    assert list(files) == ["msc"] and nb.shipped_encoders("grid", dataset="other", results=results) == {}
    emb = nb.shipped_embeddings(files, split="test", pretrained="frozen")
    assert list(emb) == ["frozen", "msc"] and emb["msc"]["provenance"]["objective"] == "msc"
    original, tokenizer, cfg = load_run_encoder(one_layer_run.output_dir)
    data = prepare_data(cfg, tokenizer)
    trained = embed(original, data.ids["test"], data.pad_token_id, progress=False)
    untrained = embed(build_encoder(cfg)[0].eval(), data.ids["test"], data.pad_token_id, progress=False)
    scale = np.abs(trained).max()
    assert np.abs(emb["msc"]["x"] - trained).max() < 2e-2 * scale       # float16 weights and cached states
    assert np.abs(emb["frozen"]["x"] - untrained).max() < 2e-2 * scale
    assert np.abs(emb["frozen"]["x"] - emb["msc"]["x"]).max() > 1e-1 * scale
    assert (emb["msc"]["y"] == data.labels["test"]).all()
