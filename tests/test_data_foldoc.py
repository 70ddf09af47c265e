"""The foldoc dataset: dictd files, entry parsing, the apt-get download and the cache."""
import gzip
import pathlib
import subprocess

import numpy as np
import pytest

from abalone_core.data import SPLITS, load_dataset
from abalone_core.data import foldoc as F


def b64(n):
    digits = F._B64
    out = ""
    while True:
        out = digits[n % 64] + out
        n //= 64
        if n == 0:
            return out


ENTRIES = [
    ("00-databases-info", "00-databases-info\n\n   <language> meta entry, not data.\n\n"),
    ("alpha", "alpha\nALPHA\n\n   <language> A {programming language} for tests.\n\n   (1999-01-02)\n\n"),
    ("beta", "beta\n\n   1. <networking, standard> A protocol.\n\n   2. <jargon> Slang use.\n\n"
             "   E-mail: <someone@example.org>.\n\n"),
    ("gamma", "gamma\n\n   /gam'uh/ <hardware> A chip.\n\n    <postal-address> ::= <name-part>\n\n"),
    ("delta", "delta\n\n   No tag here at all.\n\n"),
]


def write_dictd(folder, entries):
    """A dictd pair: gzip dictionary + index; the second entry also gets an alias headword."""
    folder.mkdir(parents=True, exist_ok=True)
    blob, index = b"", []
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{b64(len(blob))}\t{b64(len(raw))}")
        blob += raw
    index.append(index[1].replace(entries[1][0], entries[1][0].upper() + "-alias", 1))
    (folder / "foldoc.index").write_text("\n".join(index) + "\n")
    with gzip.open(folder / "foldoc.dict.dz", "wb") as f:
        f.write(blob)


def test_dictd_number():
    assert F.dictd_number("A") == 0 and F.dictd_number("B") == 1 and F.dictd_number("/") == 63
    assert F.dictd_number("BA") == 64 and F.dictd_number("Gb9L") == ((6 * 64 + 27) * 64 + 61) * 64 + 11
    with pytest.raises(ValueError):
        F.dictd_number("A-")


def test_read_dictd_merges_aliases(tmp_path):
    write_dictd(tmp_path, ENTRIES)
    entries = F.read_dictd(tmp_path / "foldoc.index", tmp_path / "foldoc.dict.dz")
    assert len(entries) == len(ENTRIES)
    heads = {e[0][0]: e for e in entries}
    assert sorted(heads["alpha"][0]) == ["ALPHA-alias", "alpha"]
    assert heads["beta"][1] == ENTRIES[2][1]


def test_read_dictd_closes_the_gzip_file(tmp_path, monkeypatch):
    write_dictd(tmp_path, ENTRIES)
    opened = []
    real_open = gzip.open

    def tracking_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(gzip, "open", tracking_open)
    entries = F.read_dictd(tmp_path / "foldoc.index", tmp_path / "foldoc.dict.dz")
    assert len(entries) == len(ENTRIES) and len(opened) == 1
    assert opened[0].closed


def test_parse_foldoc_entry_tags_and_text():
    tags, text = F.parse_foldoc_entry(ENTRIES[1][1])
    assert tags == ["language"]
    assert text == "A programming language for tests."  # headword, tag, braces, date removed
    tags, text = F.parse_foldoc_entry(ENTRIES[2][1])
    assert tags == ["jargon", "networking", "standard"]  # senses, comma lists; e-mail is not a tag
    assert text.splitlines() == ["1. A protocol.", "2. Slang use.", "E-mail: <someone@example.org>."]
    tags, text = F.parse_foldoc_entry(ENTRIES[3][1])
    assert tags == ["hardware"]  # after a pronunciation; BNF in an indented block is not a tag
    assert "<postal-address> ::= <name-part>" in text
    assert F.parse_foldoc_entry(ENTRIES[4][1])[0] == []
    wrapped = "x\n\n   <architecture, body,\n   testing> (JTAG) Text.\n\n"
    assert F.parse_foldoc_entry(wrapped)[0] == ["architecture", "body", "testing"]


def synthetic_foldoc(n=60):
    entries = [("00-database-short", "00-database-short\n\n   <language> about this dictionary\n\n")]
    tag_sets = [["language"], ["networking"], ["language", "tool"], ["networking", "standard"], ["hardware"]]
    for i in range(n):
        tags = tag_sets[i % len(tag_sets)] if i != 0 else ["rare"]
        entries.append((f"term{i}", f"term{i}\n\n   <{', '.join(tags)}> Definition of term {i}.\n\n"))
    return entries


def test_load_foldoc_from_local_files(tmp_path):
    write_dictd(tmp_path / "dict", synthetic_foldoc())
    ds = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=5, seed=0)
    assert ds.label_names == ["hardware", "language", "networking", "standard", "tool"]  # 'rare' < 5
    assert len(ds) == 59  # meta entry skipped; the only 'rare' entry has no kept tag
    assert set(ds.splits) == set(SPLITS)
    assert abs(int((ds.splits == "test").sum()) - 6) <= 2
    assert not any("about this dictionary" in t for t in ds.texts)
    again = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=5, seed=0)
    assert np.array_equal(ds.splits, again.splits) and ds.texts == again.texts
    fewer = load_dataset("foldoc", dict_dir=tmp_path / "dict", min_count=20)
    assert fewer.label_names == ["language", "networking"]


def test_foldoc_download_unpacks_and_caches(tmp_path, monkeypatch):
    write_dictd(tmp_path / "source", synthetic_foldoc())
    calls = []

    def fake_run(cmd, cwd=None, **kw):
        calls.append(cmd[:2])
        if cmd[:2] == ["apt-get", "download"]:
            (pathlib.Path(cwd) / "dict-foldoc_1.0_all.deb").write_bytes(b"deb")
        else:  # dpkg-deb -x DEB FOLDER
            dictd = pathlib.Path(cmd[3]) / "usr" / "share" / "dictd"
            dictd.mkdir(parents=True)
            for f in F.FOLDOC_FILES:
                (dictd / f).write_bytes((tmp_path / "source" / f).read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    ds = load_dataset("foldoc", data_dir=tmp_path / "cache", min_count=5)
    cached = tmp_path / "cache" / "foldoc"
    assert sorted(p.name for p in cached.iterdir()) == sorted(F.FOLDOC_FILES)  # no temporary file left
    assert (cached / "foldoc.index").read_bytes() == (tmp_path / "source" / "foldoc.index").read_bytes()
    assert len(ds) == 59 and calls == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    load_dataset("foldoc", data_dir=tmp_path / "cache", min_count=5)
    assert len(calls) == 2  # cached: no second download


def test_foldoc_fetch_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 100, "", "E: Can't select"))
    with pytest.raises(RuntimeError, match="apt-get update.*dict_dir"):
        load_dataset("foldoc", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset("foldoc", dict_dir=tmp_path)


@pytest.mark.slow
def test_real_foldoc(tmp_path):
    ds = load_dataset("foldoc", data_dir=tmp_path, min_count=1)
    assert 8_000 < len(ds) < 9_000
    assert 100 < len(ds.label_names) < 200
    assert {"language", "networking", "programming"} <= set(ds.label_names)
    kept = load_dataset("foldoc", data_dir=tmp_path)  # cached files, default min_count=10
    assert (kept.labels.sum(0) >= 8).all() and len(kept.label_names) < len(ds.label_names)
