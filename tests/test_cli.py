import json

import numpy as np

from abalone_core.cli import main


def test_train_evaluate_embed(tiny_config, tmp_path, capsys):
    cfg = tiny_config(objective="msc", max_steps=3)
    cfg.save(tmp_path / "run.yaml")
    out = tmp_path / "cli_run"
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--set", "beta=0.5", "--output", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test micro-F1" in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["beta"] == 0.5 and saved["config"]["output_dir"] == str(out)

    assert main(["evaluate", str(out)]) == 0
    assert f"{saved['test']['micro_f1']:.2f}" in capsys.readouterr().out

    assert main(["embed", str(out), "--split", "validation", "--out", str(tmp_path / "v.npy")]) == 0
    x = np.load(tmp_path / "v.npy")
    y = np.load(tmp_path / "v.labels.npy")
    assert x.shape == (saved["n_documents"]["validation"], 32) and y.shape[0] == x.shape[0]


def test_bad_configuration_is_a_clear_error(capsys):
    assert main(["train", "--set", "objective=supcon"]) == 2
    assert "objective must be one of" in capsys.readouterr().err
    assert main(["evaluate", "/nonexistent/run"]) == 2
    assert "/nonexistent/run" in capsys.readouterr().err
