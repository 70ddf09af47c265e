"""The page "Your own data" (book/own_data.md): its example files load, and its commands run as
written on examples/tickets.csv."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT

PAGE = ROOT / "book" / "own_data.md"


def page_commands() -> list[str]:
    """The lines of the page's ```bash blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_page_is_in_the_book_and_its_files_exist():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    running = next(p for p in toc["parts"] if p["caption"] == "Running it yourself")
    assert {"file": "book/own_data"} in running["chapters"]
    commands = page_commands()
    assert [c.split()[1] for c in commands] == ["stats", "train", "evaluate", "sweep", "sweep"]
    for name in ("examples/tickets.csv", "examples/tickets.yaml", "examples/tickets_sweep.yaml"):
        assert name in PAGE.read_text() and (ROOT / name).is_file(), name


def test_the_example_file_is_a_small_multi_label_dataset(monkeypatch):
    from abalone_core.training.config import Config
    from abalone_core.data import load_dataset

    monkeypatch.chdir(ROOT)
    config = Config.from_file(ROOT / "examples" / "tickets.yaml")  # its data path starts at its folder
    data = load_dataset(config.dataset, **config.dataset_kwargs)
    sizes = {s: len(data.split(s)) for s in ("train", "validation", "test")}
    assert sum(sizes.values()) == 60 and min(sizes.values()) >= 10
    assert 3 <= len(data.label_names) <= 5
    train = data.split("train").labels
    assert train.sum(axis=1).max() >= 2          # multi-label
    assert (train.sum(axis=0) > 0).all()         # every label has training documents


@pytest.mark.slow
def test_the_page_commands_run_as_written(tmp_path):
    """Each command of the page, in a copy of the example folder, with the offline MiniLM."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "notebooks").mkdir()
    shutil.copy2(ROOT / "notebooks" / "run.ipynb", tmp_path / "notebooks" / "run.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    outputs = []
    for command in page_commands():
        args = shlex.split(command)
        assert args[0] == "abalone", command
        done = subprocess.run([sys.executable, "-m", "abalone_core.cli", *args[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    stats, _, evaluate, _, table = outputs
    assert "train" in stats and "tail" in stats
    assert (tmp_path / "runs" / "tickets" / "msc" / "metrics.json").is_file()
    assert "macro" in evaluate.lower()
    assert "msc" in table and "bce" in table and "±" in table   # two seeds: a mean and its interval
