"""The run folder's one owner: what a restore keeps (abalone_core.training.run_folder)."""
from pathlib import Path

import pytest
import torch

from abalone_core.training import train as train_module
from abalone_core.errors import NonFiniteLoss
from abalone_core.training.run_folder import read_history
from abalone_core.training.runs import run


digest = train_module._state_digest  # the trainer's own digest of a state dict


def test_a_restore_keeps_no_best_candidate_from_the_dropped_stretch(tiny_config, monkeypatch):
    """Checkpoint at step 10, an evaluation with a new best validation loss at step 15, a
    non-finite loss at step 16; then the run resumes with other learning rates and never does
    as well again. The encoder it finally reports must be one its history still accounts for,
    never the dropped step 15's. (Validation losses are scripted, so the case is exact.)"""
    cfg = tiny_config(objective="msc", max_steps=30, eval_every=5, save_every=10, candidates=["best_val_loss"])
    states = {}  # evaluation step -> digests of the encoder's weights then
    scripted = {"first": {5: 3.0, 10: 2.5, 15: 1.0}, "resumed": {}}
    phase = ["first"]
    evaluate = train_module.Trainer._evaluate_and_keep

    def recording(self):
        states.setdefault(self.state["step"], []).append(digest(self.model.encoder.state_dict()))
        return evaluate(self)

    def validate(self):
        loss = scripted[phase[0]].get(self.state["step"], 2.9)
        return {"val_loss": loss, "val_loss_in_batch": loss}

    monkeypatch.setattr(train_module.Trainer, "_evaluate_and_keep", recording)
    monkeypatch.setattr(train_module.Trainer, "_validate", validate)
    step = train_module.Trainer._step

    def failing(self, batch):
        if self.state["step"] == 15:
            raise NonFiniteLoss(self._non_finite("the loss became nan"))
        return step(self, batch)

    monkeypatch.setattr(train_module.Trainer, "_step", failing)
    with pytest.raises(NonFiniteLoss):
        run(cfg, progress=False)
    out = Path(cfg.output_dir)
    assert len(states[15]) == 1  # the stretch 11-15 was evaluated (a new best) before the failure
    monkeypatch.setattr(train_module.Trainer, "_step", step)
    phase[0] = "resumed"
    m = run(cfg.replace(lr_backbone=2e-3), progress=False, allow_changes=("lr_backbone",))
    history = read_history(out / "history.jsonl")
    assert [r["step"] for r in history] == [5, 10, 15, 20, 25, 30]
    assert [r["val_loss"] for r in history] == [3.0, 2.5, 2.9, 2.9, 2.9, 2.9]
    best = torch.load(out / "encoder_best_val_loss.pt", weights_only=True)
    assert digest(best) == states[10][-1], "encoder_best_val_loss.pt is not step 10's, the best the history holds"
    assert digest(best) != states[15][0]
    assert m["selected_candidate"] == "best_val_loss"
    assert not list(out.glob("*.pending"))
