"""The convergence rule of the run records."""
import json
from pathlib import Path

import pytest

from abalone_core.training.convergence import contrastive_metric, convergence, early_stopping
from abalone_core.training.runs import run
from abalone_core.training.encoders import load_run_encoder


def hist(values, key="val_loss", total=100):
    steps = [int(total * (i + 1) / len(values)) for i in range(len(values))]
    return [{"step": s, key: v} for s, v in zip(steps, values)]


def test_loss_that_still_falls_in_the_last_quarter_has_not_converged():
    c = convergence(hist([3.0, 2.5, 2.2, 2.0, 1.9, 1.8, 1.7, 1.6]), 100, "val_loss")
    # best before the last quarter: 1.8 (step 75); best after: 1.6; 11 % better
    assert c["converged"] is False and c["improvement"] == pytest.approx((1.8 - 1.6) / 1.8)


def test_loss_flat_within_one_percent_has_converged():
    c = convergence(hist([3.0, 2.5, 2.2, 2.0, 1.9, 1.8, 1.795, 1.79]), 100, "val_loss")
    assert c["converged"] is True and c["improvement"] == pytest.approx((1.8 - 1.79) / 1.8)


def test_loss_that_rises_at_the_end_has_converged():
    assert convergence(hist([3.0, 2.0, 1.5, 1.4, 1.3, 1.2, 1.25, 1.3]), 100, "val_loss")["converged"] is True


def test_f1_gain_of_half_a_point_or_more_is_not_converged():
    base = [10.0, 20.0, 30.0, 35.0, 38.0, 40.0]
    assert convergence(hist(base + [40.2, 40.4], "val_micro_f1"), 100, "val_micro_f1")["converged"] is True
    c = convergence(hist(base + [40.2, 40.5], "val_micro_f1"), 100, "val_micro_f1")
    assert c["converged"] is False and c["improvement"] == pytest.approx(0.5)


def test_too_few_evaluations_cannot_tell():
    assert convergence(hist([2.0]), 100, "val_loss")["converged"] is None
    assert convergence([{"step": 10, "val_loss": 2.0}, {"step": 20, "val_loss": 1.0}], 100, "val_loss")["converged"] is None
    with pytest.raises(ValueError, match="metric"):
        convergence([], 100, "train_loss")


def test_contrastive_runs_are_judged_on_the_in_batch_loss_when_recorded():
    lagging = [{"step": 25 * (i + 1), "val_loss": q, "val_loss_in_batch": b}
               for i, (q, b) in enumerate([(5.0, 3.0), (4.0, 2.5), (3.5, 2.4), (3.2, 2.4)])]
    assert contrastive_metric(lagging) == "val_loss_in_batch"
    assert contrastive_metric([{"step": 1, "val_loss": 1.0}]) == "val_loss"  # older records
    # the queue loss still falls 8.6 % in the last quarter; the in-batch loss is flat
    assert convergence(lagging, 100, "val_loss")["converged"] is False
    assert convergence(lagging, 100, "val_loss_in_batch")["converged"] is True


def test_every_trained_run_records_convergence_and_new_metrics(tiny_config):
    m = run(tiny_config(objective="msc", max_steps=8, eval_every=2), progress=False)
    assert m["converged"] in (True, False) and m["convergence"]["metric"] == "val_loss_in_batch"
    for key in ("micro_f1_tuned", "macro_f1_tuned", "p_at_1", "p_at_3", "p_at_5", "ndcg_at_3", "ndcg_at_5",
                "map", "psp_at_1", "psp_at_3", "psp_at_5"):
        assert key in m["test"], key
    assert 0 < m["tuned_threshold"] < 1 and m["threshold"] == 0.5
    saved = (Path(m["config"]["output_dir"]) / "metrics.json").read_text()
    assert "NaN" not in saved and json.loads(saved)["converged"] == m["converged"]


def test_head_learning_rate_grid_keeps_the_best_validation_run(tiny_config):
    cfg = tiny_config(objective="bce", max_steps=6, eval_every=2, lr_head_grid=[1e-4, 1e-1])
    m = run(cfg, progress=False)
    search = m["lr_head_search"]
    scores = search["validation_micro_f1"]
    assert set(scores) == {"0.0001", "0.1"}
    best = max(scores, key=lambda k: (scores[k], -float(k)))
    assert search["selected"] == float(best) and m["validation"]["micro_f1"] == scores[best]
    sub = json.loads((Path(cfg.output_dir) / f"lr_head={best}" / "metrics.json").read_text())
    assert sub["test"] == m["test"] and sub["config"]["lr_head"] == float(best)
    encoder, _, loaded = load_run_encoder(cfg.output_dir)  # the selected run's encoder
    assert loaded.lr_head == float(best)


def test_candidates_limit_the_linear_evaluations(tiny_config):
    m = run(tiny_config(objective="base", max_steps=4, eval_every=2, candidates=["best_val_loss"]), progress=False)
    assert set(m["candidates"]) == {"best_val_loss"} and m["selected_candidate"] == "best_val_loss"


def test_early_stopping_fires_after_patience_evaluations_without_improvement():
    # the loss improves by more than 1 % until step 30, then only by less than 1 % at a time
    h = hist([3.0, 2.0, 1.5, 1.49, 1.488, 1.492, 1.3, 1.2], total=80)
    c = early_stopping(h, "val_loss", patience=3, cap=80)
    assert c["stop"] and c["stopped_at"] == 60 and c["reference_step"] == 30 and c["converged"] is True
    # with more patience the late improvement at step 70 resets the count: the cap comes first
    late = early_stopping(h, "val_loss", patience=4, cap=80)
    assert not late["stop"] and late["converged"] is False and late["reference_step"] == 80


def test_early_stopping_on_f1_uses_the_points_tolerance_and_cannot_tell_before_the_cap():
    h = hist([10.0, 20.0, 20.3, 20.45, 21.2], key="val_micro_f1", total=100)
    # 20.3 and 20.45 are within 0.5 points of 20.0: the second of them stops the run
    assert early_stopping(h, "val_micro_f1", patience=2, cap=100)["stopped_at"] == 80
    c = early_stopping(h[:3], "val_micro_f1", patience=2, cap=100)
    assert not c["stop"] and c["converged"] is None  # neither stopped nor at the cap yet
    with pytest.raises(ValueError, match="patience"):
        early_stopping(h, "val_micro_f1", patience=0)


def test_a_run_with_early_stopping_stops_records_it_and_keeps_a_constant_rate(tiny_config):
    from abalone_core.training.run_folder import read_history

    cfg = tiny_config(objective="bce", max_steps=60, eval_every=2, early_stopping=1, warmup_ratio=0.0,
                      lr_backbone=1e-9, lr_head=1e-9)  # nothing moves: the first comparison stops it
    assert cfg.resolved_schedule == "constant"
    m = run(cfg, progress=False)
    c = m["convergence"]
    assert c["rule"] == "early_stopping" and m["converged"] is True
    assert m["steps"] == c["stopped_at"] == 4 < 60
    hist_ = read_history(Path(cfg.output_dir) / "history.jsonl")
    assert [r["step"] for r in hist_] == [2, 4] and len({r["lr"] for r in hist_}) == 1
    # the same command on the finished run trains nothing more
    again = run(cfg, progress=False)
    assert again["steps"] == 4


def test_early_stopping_refuses_a_decaying_schedule():
    from abalone_core.training.config import Config, ConfigError

    with pytest.raises(ConfigError, match="early_stopping needs a learning rate that does not decay"):
        Config(early_stopping=3, schedule="cosine")
    assert Config(early_stopping=3).resolved_schedule == "constant"
    assert Config(objective="msc").resolved_schedule == "cosine"
