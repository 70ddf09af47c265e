"""Where chapter 8 finds the committed results: the checkout, ./results, or a clone (Colab)."""
import logging
import subprocess

import pytest

from abalone_core import notebook as nb


def _repository_with_results(tmp_path):
    src = tmp_path / "src"
    (src / "results" / "grid").mkdir(parents=True)
    (src / "results" / "grid" / "runs.jsonl").write_text("{}\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "."],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "r"]):
        subprocess.run(cmd, cwd=src, check=True)
    return src


def test_outside_a_checkout_the_results_come_from_a_clone_made_once(tmp_path, monkeypatch):
    src = _repository_with_results(tmp_path)
    work = tmp_path / "colab"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path / "cache"))
    found = nb.results_dir(repository=str(src))
    assert (found / "grid" / "runs.jsonl").is_file()
    assert found == tmp_path / "cache" / "book-repository" / "results"
    (src / "results" / "grid" / "runs.jsonl").unlink()  # a second call reuses the clone
    assert nb.results_dir(repository=str(src)) == found


def test_a_failed_clone_falls_back_to_the_working_directory(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.WARNING, logger="abalone_core")  # nb.setup() in another test may have raised it
    assert str(nb.results_dir(repository=str(tmp_path / "missing"))) == "results"
    assert "could not fetch the committed results" in caplog.text


def test_inside_the_checkout_the_results_are_its_own():
    assert nb.results_dir() == nb.repo_root() / "results"
    assert nb.results_dir("elsewhere").name == "elsewhere"


def write_grid_file(root, text: str):
    """A checkout with ``sweeps/g.yaml`` holding ``text``; returns its results folder."""
    (root / "results").mkdir()
    (root / "sweeps").mkdir()
    (root / "sweeps" / "g.yaml").write_text(text)
    return root / "results"


def test_grid_settings_flatten_the_grid_file_overrides_over_parameters(tmp_path):
    results = write_grid_file(tmp_path, "parameters:\n  max_steps: 800\n  batch_size: 32\n"
                                        "  overrides: {train_layers: 1, batch_size: 16}\n"
                                        "  supervised_overrides: {lr_head_grid: [0.03, 0.1]}\n")
    settings = nb.grid_settings("g", results=results)
    assert settings == {"max_steps": 800, "batch_size": 16, "train_layers": 1,
                        "supervised_overrides": {"lr_head_grid": [0.03, 0.1]}}
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        nb.grid_settings("missing", results=results)


def test_the_committed_converged_grid_states_its_budget():
    settings = nb.grid_settings("cpu_converged")
    assert settings["train_layers"] >= 1 and settings["max_steps"] > 0
    assert len(settings["supervised_overrides"]["lr_head_grid"]) >= 2


def test_grid_settings_of_a_dataset_include_its_own_budget(tmp_path):
    results = write_grid_file(
        tmp_path, "parameters:\n  max_steps: 800\n  overrides: {train_layers: 1, eval_every: 100}\n"
                  "parameters_by:\n  dataset:\n    b: {max_steps: 1600, overrides: {eval_every: 200}}\n"
                  "grid:\n  dataset: [a, b]\n")
    assert nb.grid_settings("g", results=results)["max_steps"] == 800
    assert nb.grid_settings("g", results=results, dataset="a")["eval_every"] == 100
    b = nb.grid_settings("g", results=results, dataset="b")
    assert (b["max_steps"], b["eval_every"], b["train_layers"]) == (1600, 200, 1)
    with pytest.raises(ValueError, match="no dataset 'c'"):
        nb.grid_settings("g", results=results, dataset="c")


def test_checkpoints_lists_the_run_files_only(tmp_path):
    """The run folder's lock and a write in progress are not listed."""
    from abalone_core import atomic
    from abalone_core.training.run_folder import LOCK_NAME

    atomic.write_text(tmp_path / "config.yaml", "seed: 0\n")
    (tmp_path / "checkpoint.pt").write_bytes(b"\0" * 2 ** 20)
    (tmp_path / LOCK_NAME).touch()
    atomic.temporary_name(tmp_path / "metrics.json").write_text("{")
    (tmp_path / "encoders").mkdir()
    listing = nb.checkpoints(tmp_path)
    assert list(listing["file"]) == ["checkpoint.pt", "config.yaml"]
    assert listing.set_index("file").at["checkpoint.pt", "MB"] == 1.0


def test_time_estimate_multiplies_steps_by_the_step_time():
    from abalone_core.training.config import Config
    from abalone_core.training.timing import planned_steps, time_estimate

    table = time_estimate(0.5, {"L_Base": 30, "L_MSC": 90})
    assert table["steps"].tolist() == [30, 90, 120]
    assert table["steps"].dtype.kind == "i"
    assert table["minutes"].tolist() == pytest.approx([0.25, 0.75, 1.0])
    # the paper-sized profile counts epochs: 20 passes over 1,000 documents in batches of 32
    gpu = nb.config_for("gpu", "msc", runs_dir="runs")
    assert gpu.epochs == 20 and gpu.batch_size == 32
    assert planned_steps(gpu, 1000) == 20 * 32
    assert planned_steps(Config(max_steps=30), 1000) == 30
    with pytest.raises(ValueError, match="positive"):
        time_estimate(0.0, {"x": 1})


def test_device_timing_is_skipped_quickly_on_a_cpu():
    import time

    configs = {"msc": nb.config_for("cpu", "msc", runs_dir="runs", device="cpu")}
    start = time.perf_counter()
    text = nb.device_timing(configs)
    assert time.perf_counter() - start < 1 and text.startswith("Timing skipped")
