import json

import pytest

from abalone_core.config import Config, parse_overrides


def test_round_trip_yaml_and_json(tmp_path):
    cfg = Config(objective="focal", subset={"train": 10}, probe={"epochs": 2}, max_steps=5)
    for name in ("c.yaml", "c.json"):
        cfg.save(tmp_path / name)
        assert Config.from_file(tmp_path / name) == cfg


@pytest.mark.parametrize(
    "change,match",
    [
        ({"objective": "supcon"}, "objective must be one of"),
        ({"temperature": 0}, "temperature"),
        ({"beta": 0}, "beta"),
        ({"beta": 1.2}, "beta"),
        ({"batch_size": 1}, "batch_size"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"pooling": "max"}, "pooling"),
        ({"probe": {"epoch": 3}}, "unknown probe settings"),
        ({"init_from": "runs/x"}, "init_from"),
        ({"device": "tpu"}, "device"),
        ({"subset": {"train": 0}}, "subset values"),
    ],
)
def test_impossible_values_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        Config(**change)


def test_all_errors_reported_at_once():
    with pytest.raises(ValueError) as err:
        Config(temperature=-1, beta=3, epochs=0)
    assert str(err.value).count("\n  - ") == 3


def test_unknown_keys_rejected_in_files_and_replace(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"objective": "msc", "lr": 1e-4}))
    with pytest.raises(ValueError, match=r"unknown configuration keys \['lr'\]"):
        Config.from_file(tmp_path / "c.json")
    with pytest.raises(ValueError, match="unknown configuration keys"):
        Config().replace(tau=0.2)
    (tmp_path / "c.txt").write_text("")
    with pytest.raises(ValueError, match="yaml"):
        Config.from_file(tmp_path / "c.txt")


def test_schedule_follows_objective():
    assert Config(objective="msc").resolved_schedule == "cosine"
    assert Config(objective="bce").resolved_schedule == "linear"
    assert Config(objective="bce", schedule="constant").resolved_schedule == "constant"


def test_overrides_parse_yaml_values():
    assert parse_overrides(["subset={train: 100}", "objective=bce", "max_steps=3"]) == {
        "subset": {"train": 100}, "objective": "bce", "max_steps": 3}
    # YAML reads 2e-5 as a string; the configuration turns it into the number.
    assert Config.from_dict(parse_overrides(["lr_backbone=2e-5"])).lr_backbone == 2e-5
    with pytest.raises(ValueError, match="lr_head must be a number"):
        Config(lr_head="fast")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["objective"])
