import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from abalone_core.training.config import CONTRASTIVE, OBJECTIVES, TFIDF, TFIDF_OBJECTIVES, Config
from abalone_core.training.runs import run
from abalone_core.errors import Interrupted
from abalone_core.training.train import Trainer, param_groups


def read_history(path):
    return [json.loads(l) for l in (path / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("objective", [o for o in OBJECTIVES if o not in TFIDF_OBJECTIVES])
def test_every_objective_trains_and_scores(tiny_config, objective):
    cfg = tiny_config(objective=objective)
    m = run(cfg, progress=False)
    for split in ("validation", "test"):
        s = m[split]
        assert 0 <= s["micro_f1"] <= 100 and 0 <= s["macro_f1"] <= 100 and 0 <= s["hamming"] <= 1000
        assert len(s["per_label_f1"]) == len(m["label_names"]) == 6
    cfg_dir = Path(cfg.output_dir)
    saved = json.loads((cfg_dir / "metrics.json").read_text())
    assert saved["test"] == m["test"]
    if objective == "frozen":
        assert m["steps"] == 0 and m["selected_candidate"] == "pretrained"
        return
    assert m["steps"] == cfg.max_steps
    hist = read_history(cfg_dir)
    assert hist[-1]["step"] == cfg.max_steps and all(np.isfinite(h["train_loss"]) for h in hist)
    if objective in CONTRASTIVE:
        assert m["selected_candidate"] in ("last", "best_train_loss", "best_val_loss")
        assert (cfg_dir / "encoder_last.pt").exists() and "val_loss" in hist[-1]
    else:
        assert (cfg_dir / "model_best.pt").exists() and "val_micro_f1" in hist[-1]


def _final_weights(cfg):
    return torch.load(f"{cfg.output_dir}/checkpoint.pt", weights_only=False)["model"]


# train_layers=1: the top layer trained on the cached output of the frozen bottom (chapter 4)
@pytest.mark.parametrize("objective,train_layers", [("msc", None), ("bce", None), ("msc", 1), ("bce", 1)])
def test_interrupted_run_resumes_to_identical_numbers(tiny_config, tmp_path, monkeypatch, objective, train_layers):
    straight = tiny_config(objective=objective, max_steps=8, eval_every=3, train_layers=train_layers,
                           output_dir=str(tmp_path / "a"))
    expected = run(straight, progress=False)

    stopped = straight.replace(output_dir=str(tmp_path / "b"))
    original = Trainer._step

    def step_then_sigterm(self, batch):
        loss = original(self, batch)
        if self.state["step"] == 4:  # the 5th step: send ourselves SIGTERM mid-run
            signal.raise_signal(signal.SIGTERM)
        return loss

    monkeypatch.setattr(Trainer, "_step", step_then_sigterm)
    with pytest.raises(Interrupted):
        run(stopped, progress=False)
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ckpt["state"]["step"] == 5
    monkeypatch.setattr(Trainer, "_step", original)
    resumed = run(stopped, progress=False)

    assert resumed["test"] == expected["test"] and resumed["validation"] == expected["validation"]
    a, b = _final_weights(straight), _final_weights(stopped)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda hs: [{k: v for k, v in h.items() if k != "elapsed_s"} for h in hs]
    assert strip(read_history(tmp_path / "b")) == strip(read_history(tmp_path / "a"))


def test_queue_is_filled_and_checkpointed(tiny_config):
    cfg = tiny_config(objective="msc", max_steps=4, queue_size=20)
    run(cfg, progress=False)
    state = torch.load(f"{cfg.output_dir}/checkpoint.pt", weights_only=False)["model"]
    assert int(state["queue.count"]) == 20  # 4 steps x 8 documents, wrapped at 20
    assert state["queue.y"].sum(1).min() >= 1  # only labelled documents were trained on and enqueued
    # The key encoder moved towards the query encoder but is not equal to it (m = 0.9).
    k, q = state["key_encoder.module.head.net.0.weight"], state["encoder.head.net.0.weight"]
    assert not torch.equal(k, q)


def test_resume_with_other_configuration_is_refused(tiny_config, tmp_path):
    cfg = tiny_config(objective="base", max_steps=2)
    run(cfg, progress=False)
    with pytest.raises(ValueError, match="different configuration.*temperature"):
        run(cfg.replace(temperature=0.5), progress=False)
    # resume=False starts over in the same directory.
    assert run(cfg.replace(temperature=0.5), resume=False, progress=False)["steps"] == 2


def test_fine_tuning_starts_from_contrastive_encoder(tiny_config, tmp_path, monkeypatch):
    pre = tiny_config(objective="msc", max_steps=3, output_dir=str(tmp_path / "msc"))
    run(pre, progress=False)
    ft = tiny_config(objective="bce", init_from=str(tmp_path / "msc"), max_steps=2, lr_backbone=1e-12,
                     lr_head=1e-12, output_dir=str(tmp_path / "ft"), dropout=0.0, warmup_ratio=0.0)
    trainer = Trainer(ft, progress=False)
    trainer.setup()
    chosen = json.loads((tmp_path / "msc" / "metrics.json").read_text())["selected_candidate"]
    enc = torch.load(tmp_path / "msc" / f"encoder_{chosen}.pt")
    got = trainer.model.encoder.state_dict()
    for k, v in enc.items():
        if not k.startswith("head."):
            assert torch.equal(got[k], v), k
    with pytest.raises(FileNotFoundError, match="no encoder weights"):
        Trainer(ft.replace(init_from=str(tmp_path / "nowhere")), progress=False).setup()
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        Trainer(ft.replace(init_from=str(tmp_path / "unfinished")), progress=False).setup()


def test_same_seed_same_numbers_and_other_seed_differs(tiny_config, tmp_path):
    a = run(tiny_config(objective="bqueue", output_dir=str(tmp_path / "1")), progress=False)
    b = run(tiny_config(objective="bqueue", output_dir=str(tmp_path / "2")), progress=False)
    c = tiny_config(objective="bqueue", output_dir=str(tmp_path / "3"), seed=1)
    run(c, progress=False)
    assert a["test"] == b["test"]
    ha, hc = read_history(tmp_path / "1"), read_history(tmp_path / "3")
    assert ha[-1]["train_loss"] != hc[-1]["train_loss"]


def test_param_groups_follow_the_paper(tiny_config):
    cfg = tiny_config(objective="msc", lr_backbone=2e-5, lr_head=5e-5, weight_decay=0.01)
    trainer = Trainer(cfg, progress=False)
    trainer.setup()
    groups = {g["name"]: g for g in param_groups(trainer.model, cfg)}
    assert groups["backbone"]["lr"] == 2e-5 and groups["head"]["lr"] == 5e-5
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["backbone"]["weight_decay"] == 0.01
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    no_decay = [names[id(p)] for p in groups["backbone_no_decay"]["params"]]
    assert all(n.endswith("bias") or "LayerNorm" in n for n in no_decay)
    assert any("LayerNorm.weight" in n for n in no_decay)
    everything = [id(p) for g in groups.values() for p in g["params"]]
    assert id(trainer.model.prototypes.weight) in everything
    key_params = {id(p) for p in trainer.model.key_encoder.parameters()}
    assert not key_params & set(everything)  # the optimiser never sees the key encoder
    assert len(everything) == len(set(everything))


def test_subset_errors_before_training(tiny_config):
    with pytest.raises(ValueError, match="subset"):
        tiny_config(subset={"training": 10})
    with pytest.raises(ValueError, match="unknown configuration keys"):
        Config.from_dict({"objectiv": "msc"})


def test_token_cache_is_safe_for_concurrent_runs(tiny_config, tmp_path):
    """Runs of a sweep tokenise the same split at the same time: each writes its own
    temporary file before the atomic rename, so none finds its file taken by another."""
    import threading

    from abalone_core.method.model import load_backbone
    from abalone_core.data.run_data import _cached_tokens

    config = tiny_config()
    _, tokenizer = load_backbone(config.backbone)
    texts = [f"alpha beta gamma {i}" for i in range(200)]
    start, results, errors = threading.Barrier(6), [], []

    def work():
        start.wait()
        try:
            results.append(_cached_tokens(texts, tokenizer, config, "train"))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cached = sorted((tmp_path / "cache" / "tokens").iterdir())
    assert [p.suffix for p in cached] == [".pt", ".lock"]  # one cache file and its lock, no temporary left behind
    assert all(r == results[0] for r in results) and len(results) == 6


def test_resume_with_changes_applies_the_new_learning_rates(tiny_config, monkeypatch):
    cfg = tiny_config(objective="msc", max_steps=4, save_every=2, lr_backbone=1e-3, lr_head=1e-3, warmup_ratio=0.0)
    original = Trainer._step

    def stop_at_2(self, batch):  # a finished run is not resumed with changes: stop it at step 2
        self.stop_requested = self.state["step"] == 1
        return original(self, batch)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_step", stop_at_2)
        with pytest.raises(Interrupted):
            run(cfg, progress=False)
    ckpt = torch.load(f"{cfg.output_dir}/checkpoint.pt", weights_only=False)
    assert ckpt["state"]["step"] == 2
    changed = cfg.replace(lr_backbone=1e-4, lr_head=2e-4, weight_decay=0.1)
    trainer = Trainer(changed, progress=False)
    trainer.setup()
    with pytest.raises(ValueError, match="different configuration"):
        trainer.restore(ckpt)
    trainer.restore(ckpt, allow_changes=("lr_backbone", "lr_head", "weight_decay"))
    factor = trainer.scheduler.lr_lambdas[0](trainer.scheduler.last_epoch)
    for group in trainer.optimizer.param_groups:
        base = 1e-4 if group["name"].startswith("backbone") else 2e-4
        assert group["initial_lr"] == base and group["lr"] == pytest.approx(base * factor)
        assert group["weight_decay"] == (0.0 if group["name"].endswith("no_decay") else 0.1)
    assert trainer.state["changes"][-1]["lr_head"] == {"was": 1e-3, "now": 2e-4}


def test_allow_changes_names_only_optimisation_settings(tiny_config):
    from abalone_core.training.runs import allowed_changes

    assert allowed_changes(True) == ("lr_backbone", "lr_head", "weight_decay", "grad_clip", "mixed_precision")
    with pytest.raises(ValueError, match="temperature"):
        run(tiny_config(), allow_changes=("temperature",), progress=False)


def test_no_step_is_applied_and_no_weights_written_after_a_non_finite_loss(tiny_config, monkeypatch):
    from abalone_core.errors import NonFiniteLoss

    cfg = tiny_config(objective="bce", max_steps=4, save_every=1)
    original = Trainer._loss
    seen = {}

    def loss(self, batch):
        value = original(self, batch)
        if self.model.training and self.state["step"] == 2:
            seen["before"] = {k: v.clone() for k, v in self.model.state_dict().items()}
            seen["trainer"] = self
            return value * float("inf")
        return value

    monkeypatch.setattr(Trainer, "_loss", loss)
    with pytest.raises(NonFiniteLoss, match="loss became inf at step 3"):
        run(cfg, progress=False)
    after = seen["trainer"].model.state_dict()
    for k, v in seen["before"].items():
        assert torch.equal(after[k], v), k  # the optimiser did not move
    assert torch.load(f"{cfg.output_dir}/checkpoint.pt", weights_only=False)["state"]["step"] == 2


def test_hardware_reports_the_runs_device(tiny_config):
    from abalone_core.training import provenance, runs

    assert runs.hardware is provenance.hardware
    cpu = provenance.hardware("cpu")
    assert cpu["device"] == "cpu" and cpu["gpu"] is None  # a CPU run on a GPU machine names no GPU
    sweep_keys = {"platform", "python", "torch", "cpu_count", "host", "gpus", "gpu"}
    assert sweep_keys | {"abalone_core", "cpu_threads", "cpu_capability"} <= set(cpu)
    assert cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. "AVX2", "AVX512"
    m = run(tiny_config(objective="frozen"), progress=False)
    assert m["hardware"]["device"] == "cpu" and m["hardware"]["cpu_threads"] >= 1


def test_hardware_names_the_gpu_of_the_configured_index(monkeypatch):
    from abalone_core.training import provenance

    monkeypatch.setattr(provenance, "gpu_names", lambda: ("GPU A", "GPU B"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert provenance.hardware("cuda:1")["gpu"] == "GPU B"
    assert provenance.hardware("cuda")["gpu"] == "GPU A"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert provenance.hardware("cuda:0")["gpu"] == "GPU B"  # torch's cuda:0 is the machine's second GPU


def test_max_length_is_checked_against_the_backbone(tiny_config):
    from transformers import RobertaConfig, RobertaModel

    from abalone_core.training.encoders import max_positions

    roberta = RobertaModel(RobertaConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=16, max_position_embeddings=34))
    assert max_positions(roberta) == 32  # two positions reserved by RoBERTa's padding offset
    trainer = Trainer(tiny_config(max_length=65), progress=False)
    with pytest.raises(ValueError, match="max_length=65 is above the 64 positions"):
        trainer.setup()


def test_backbone_checks_fail_fast_offline(monkeypatch, tmp_path):
    from abalone_core.training.encoders import check_backbone

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE=1"):
        check_backbone("nobody/no-such-model")
    with pytest.raises(ValueError, match="not a Hugging Face Hub id"):
        check_backbone("a/b/c")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    check_backbone("roberta-base")  # with the Hub on, Hub ids are left to from_pretrained
    check_backbone("minilm")


def test_history_lines_are_whole_after_resume(tiny_config, monkeypatch):
    """The history is rewritten atomically: a record is whole or absent, and records newer
    than the checkpoint are dropped on resume."""
    from abalone_core.training.run_folder import read_history

    cfg = tiny_config(objective="bce", max_steps=6, eval_every=1, save_every=3)
    original = Trainer._step

    def stop_at_5(self, batch):
        loss = original(self, batch)
        if self.state["step"] == 4:
            raise KeyboardInterrupt  # killed between the evaluation at step 4 and the next checkpoint
        return loss

    monkeypatch.setattr(Trainer, "_step", stop_at_5)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, progress=False)
    assert [r["step"] for r in read_history(Path(cfg.output_dir) / "history.jsonl")] == [1, 2, 3, 4]
    monkeypatch.setattr(Trainer, "_step", original)
    run(cfg, progress=False)
    assert [r["step"] for r in read_history(Path(cfg.output_dir) / "history.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_a_run_leaves_the_process_deterministic_setting_as_it_was(tiny_config, monkeypatch):
    """Deterministic algorithms are on while a run trains and evaluates, and the kernel's own
    setting (and cuDNN's flags) are back afterwards, also after a run that raises."""
    from abalone_core.training.devices import deterministic_mode

    seen = []
    original = Trainer._step

    def step(self, batch):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_step", step)
    before = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        torch.use_deterministic_algorithms(False)
        run(tiny_config(objective="bce", max_steps=2, output_dir=str(Path(tiny_config().output_dir) / "a")),
            progress=False)
        assert seen and all(seen), "training ran without deterministic algorithms"
        assert not torch.are_deterministic_algorithms_enabled()

        def broken(self, batch):
            assert torch.are_deterministic_algorithms_enabled()
            raise RuntimeError("broken step")

        monkeypatch.setattr(Trainer, "_step", broken)
        with pytest.raises(RuntimeError, match="broken step"):
            run(tiny_config(objective="bce", max_steps=2, output_dir=str(Path(tiny_config().output_dir) / "b")),
                progress=False)
        assert not torch.are_deterministic_algorithms_enabled()

        torch.use_deterministic_algorithms(True)  # a kernel's own strict setting stays strict
        with deterministic_mode(True):
            assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        with deterministic_mode(False):
            pass
        assert torch.are_deterministic_algorithms_enabled()
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == cudnn
    finally:
        torch.use_deterministic_algorithms(before)
