import json
import os

import pytest

from abalone_core.training.config import Config, ConfigError
from abalone_core.training.overrides import parse_overrides


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


@pytest.mark.parametrize(
    "change,message",
    [
        ({"epochs": None}, "epochs must be an integer, got null"),
        ({"max_steps": 2.5}, "max_steps must be a whole number or null (no fraction), got 2.5"),
        ({"batch_size": "32"}, "batch_size must be an integer, got '32'"),
        ({"batch_size": True}, "batch_size must be an integer, got True"),
        ({"lr_backbone": float("inf")}, "lr_backbone must be a finite number, got inf"),
        ({"temperature": "nan"}, "temperature must be a finite number"),
        ({"grad_clip": "none"}, "grad_clip must be a number or null, got 'none'"),
        ({"deterministic": "false"}, "deterministic must be true or false, got 'false'"),
        ({"keep_unlabelled": 0}, "keep_unlabelled must be true or false, got 0"),
        ({"objective": 3}, "objective must be a string, got 3"),
        ({"dataset_kwargs": ["path", "x.csv"]}, "dataset_kwargs must be a mapping"),
        ({"dataset_kwargs": None}, "dataset_kwargs must be a mapping"),
        ({"probe": "fast"}, "probe must be a mapping"),
        ({"lr_head_grid": "0.1"}, "lr_head_grid must be a list"),
        ({"device": "cuda1"}, "device must be auto, cpu, cuda, cuda:<index> or mps, got 'cuda1'"),
        ({"device": "gpu"}, "device must be"),
        ({"output_dir": "  "}, "output_dir must name a folder"),
        ({"probe": {"heads": 0}}, "probe: heads must be a positive integer"),
    ],
)
def test_types_are_checked_strictly(change, message):
    with pytest.raises(ConfigError) as err:
        Config(**change)
    assert any(message in p for p in err.value.problems), err.value.problems
    assert len(err.value.problems) == 1


def test_numbers_written_loosely_are_still_numbers():
    cfg = Config(objective="bce", lr_head="5e-5", max_steps=3.0, temperature=1, grad_clip=None, lr_head_grid=(1e-3, 1))
    assert cfg.lr_head == 5e-5 and cfg.max_steps == 3 and isinstance(cfg.max_steps, int)
    assert cfg.temperature == 1.0 and isinstance(cfg.temperature, float)
    assert cfg.lr_head_grid == [1e-3, 1.0]


def test_a_type_error_does_not_hide_the_other_problems():
    with pytest.raises(ConfigError) as err:
        Config(epochs="many", beta=3, objective="supcon")
    assert len(err.value.problems) == 3


@pytest.mark.parametrize("text", ["", "\n\n", "# objective: msc\n# seed: 1\n"])
def test_empty_or_comment_only_file_is_an_error(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path} holds no settings"):
        Config.from_file(path)


def test_syntax_errors_name_file_and_line(tmp_path):
    (tmp_path / "a.yaml").write_text("objective: msc\nseed: 0\nsubset: {train: 10\n")
    with pytest.raises(ValueError, match=r"a\.yaml, line \d+, column \d+: YAML syntax error"):
        Config.from_file(tmp_path / "a.yaml")
    (tmp_path / "a.json").write_text('{\n  "objective": "msc",\n  "seed": ,\n}')
    with pytest.raises(ValueError, match=r"a\.json, line 3, column \d+: JSON syntax error"):
        Config.from_file(tmp_path / "a.json")
    with pytest.raises(FileNotFoundError, match="configuration file not found"):
        Config.from_file(tmp_path / "none.yaml")


def test_problems_in_a_file_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("lr_head: fast\nobjectiv: msc\n")
    with pytest.raises(ConfigError, match=r"in .*a\.yaml") as err:
        Config.from_file(tmp_path / "a.yaml")
    assert err.value.source == str(tmp_path / "a.yaml")
    assert "did you mean 'objective' for 'objectiv'" in err.value.problems[0]


def test_local_paths_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    cfg = Config(objective="bce", dataset="csv", init_from="runs/msc", backbone="model",
                 dataset_kwargs={"path": {"train": "d/train.csv", "test": "/abs/test.csv"}, "label_sep": "|",
                                 "data_dir": "~/cache"})
    assert cfg.dataset_kwargs["path"] == {"train": str(tmp_path / "d" / "train.csv"), "test": "/abs/test.csv"}
    assert cfg.dataset_kwargs["data_dir"] == os.path.expanduser("~/cache") and cfg.dataset_kwargs["label_sep"] == "|"
    assert cfg.init_from == str(tmp_path / "runs" / "msc") and cfg.backbone == str(tmp_path / "model")
    cfg.save(tmp_path / "c.yaml")
    monkeypatch.chdir("/")
    assert Config.from_file(tmp_path / "c.yaml") == cfg  # the same files from any folder
    assert Config(backbone="roberta-base").backbone == "roberta-base" and Config().backbone == "minilm"


def test_differences_ignore_output_and_device():
    a = Config(objective="msc", output_dir="x", device="cpu")
    assert a.differences(a.replace(output_dir="y", device="auto")) == {}
    assert a.differences(a.replace(objective="frozen", temperature=0.5).to_dict()) == {
        "objective": ("msc", "frozen"), "temperature": (0.1, 0.5)}


@pytest.mark.parametrize("value", [None, "x", "", 1.5, -1, True, [], {}, [1], [[1]], [{}], {"a": 1}, float("inf"),
                                   float("nan")])
def test_any_wrong_value_is_a_configuration_error(value):
    """Whatever a field is given, the answer is a ConfigError naming the field, never a TypeError."""
    from dataclasses import fields

    for f in fields(Config):
        try:
            Config(**{f.name: value})
        except ConfigError as err:
            assert any(f.name in p for p in err.problems), (f.name, value, err.problems)


def test_pooling_layer_cache_and_candidates_take_the_choices_of_the_modules_that_use_them():
    from abalone_core.training import config, layer_cache, train
    from abalone_core.method import model

    assert train.CANDIDATES is config.CANDIDATES
    for pooling in model.POOLINGS:
        assert Config(pooling=pooling).pooling == pooling
    for kept in (*layer_cache.DTYPES, "off"):
        assert Config(layer_cache=kept).layer_cache == kept
    assert Config(candidates=list(config.CANDIDATES)).candidates == list(config.CANDIDATES)
    for key, bad in (("pooling", "max"), ("layer_cache", "bfloat16"), ("candidates", ["best"])):
        with pytest.raises(ValueError, match=f"{key} must be"):
            Config(**{key: bad})
