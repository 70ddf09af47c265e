"""The debtags dataset: Debian index files, descriptions and tags, the source-package split,
the apt-get fetch and its cache, provenance."""
import bz2
import gzip
import hashlib
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from abalone_core.cli import main
from abalone_core.data import SPLITS, grouped_split, load_dataset
from abalone_core.data import debtags as D

LISTS = "deb.debian.org_debian_dists_bookworm"  # how apt names the files of its lists folder


def control(fields: dict) -> str:
    """One deb822 paragraph; a value's later lines become continuation lines (" " + line)."""
    out = []
    for key, value in fields.items():
        first, *rest = value.split("\n")
        out.append(f"{key}: {first}".rstrip())
        out.extend(" " + line for line in rest)
    return "\n".join(out) + "\n"


def description(short, paragraphs):
    """A Debian description: short line, then the long text with " ." between paragraphs."""
    lines = [short]
    for i, para in enumerate(paragraphs):
        if i:
            lines.append(".")
        lines.extend(para)
    return "\n".join(lines)


def corpus():
    """Packages as dicts: name, source (None: no Source field), tags (None: no Tag field), desc, md5 (optional)."""
    out = []
    for i in range(30):
        src = f"proj{i}"
        topic = ["use::editing", "use::viewing", "works-with::text"][i % 3]
        extra = ["works-with::image"] if i % 4 == 0 else []
        long = [[f"Project {i} does useful things", f"for {topic} users."], [f"Version {i} adds more."]]
        out.append(dict(name=f"lib{src}1", source=f"{src} (1.{i}-2)", tags=["devel::library", topic, *extra],
                        desc=description(f"library of project {i}", long)))
        out.append(dict(name=f"lib{src}-dev", source=src, tags=["devel::library", "role::devel-lib", topic],
                        desc=description(f"library of project {i} - development files", long)))
        out.append(dict(name=src, source=None, tags=["role::program", topic, *extra],
                        desc=description(f"project {i} program", long)))
    out += [
        dict(name="untagged", source=None, tags=None, desc=description("never seen", [["A package without tags."]])),
        dict(name="empty-tag", source=None, tags=[], desc=description("never seen either", [["Empty Tag field."]])),
        dict(name="dup-a", source="dupsrc", tags=["use::editing", "role::program"],
             desc=description("the same description", [["Shared by three packages."]])),
        dict(name="dup-b", source="other", tags=["use::viewing", "role::program"],
             desc=description("the same description", [["Shared by three packages."]])),
        dict(name="dup-c", source="third", tags=["use::viewing"], md5="0" * 32,
             desc=description("the same description", [["Shared by three packages."]])),
        dict(name="rare-one", source=None, tags=["use::editing", "special::rare"],
             desc=description("a rare tag", [["Only one package carries it."]])),
    ]
    return out


def md5_of(p):
    return p.get("md5") or hashlib.md5((p["desc"] + "\n").encode()).hexdigest()


def index_texts(packages):
    """(Packages, Translation-en) contents: the Tag field over several lines, the long
    description only in the translation, keyed by Description-md5."""
    pkgs, trans, seen = [], [], set()
    for p in packages:
        fields = {"Package": p["name"]}
        if p["source"]:
            fields["Source"] = p["source"]
        fields["Version"] = "1.0-1"
        fields["Architecture"] = "amd64"
        fields["Description"] = p["desc"].split("\n")[0]
        fields["Description-md5"] = md5_of(p)
        if p["tags"] is not None:
            tags = p["tags"]
            fields["Tag"] = ",\n".join(", ".join(tags[i:i + 2]) for i in range(0, len(tags), 2))
        fields["Section"] = "misc"
        pkgs.append(control(fields))
        if md5_of(p) not in seen:
            seen.add(md5_of(p))
            trans.append(control({"Package": p["name"], "Description-md5": md5_of(p), "Description-en": p["desc"]}))
    return "\n".join(pkgs), "\n".join(trans)


def release_text(packages: bytes, translation: bytes, clearsigned=True):
    sums = "\n".join(f" {hashlib.sha256(b).hexdigest()} {len(b):>8} {path}" for b, path in (
        (packages, "main/binary-amd64/Packages"), (translation, "main/i18n/Translation-en")))
    body = ("Origin: Debian\nLabel: Debian\nSuite: oldstable\nVersion: 12.99\nCodename: bookworm\n"
            "Date: Sat, 01 Jan 2000 10:00:00 UTC\nMD5Sum:\n 0123 1 main/binary-amd64/Packages\n"
            f"SHA256:\n{sums}\n")
    if not clearsigned:
        return body
    return ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + body
            + "-----BEGIN PGP SIGNATURE-----\n\nabc=\n-----END PGP SIGNATURE-----\n")


def write_index(folder, packages=None, release=True, names=("Packages", "Translation-en", "Release")):
    folder.mkdir(parents=True, exist_ok=True)
    pk, tr = (t.encode() for t in index_texts(packages or corpus()))
    (folder / names[0]).write_bytes(pk)
    (folder / names[1]).write_bytes(tr)
    if release:
        (folder / names[2]).write_text(release_text(pk, tr))
    return folder


def source_of_text(folder):
    """text -> source package of the first package with that text (the one the dataset keeps)."""
    rows, _ = D.read_packages(*D.find_index_files(folder)[:2])
    out = {}
    for r in rows:
        out.setdefault(r["text"], r["source"])
    return out


# --------------------------------------------------------------------------- parsing

def test_description_paragraphs_and_continuation_lines():
    value = "Short line\n first line of the long text\n  second,  indented\n .\n next paragraph\n .\n"
    assert D.description_text(value) == "Short line\nfirst line of the long text second, indented\nnext paragraph"
    assert D.description_text("Only a short line") == "Only a short line"


def test_stanzas_tag_over_several_lines_and_bad_lines():
    text = "Package: a\nTag: devel::library, role::program,\n use::editing,\n  works-with::text\nSection: x\n\n\n" \
           "Package: b\n"
    st = list(D.stanzas(text))
    assert [s["Package"] for s in st] == ["a", "b"]
    assert D.tag_list(st[0]["Tag"]) == ["devel::library", "role::program", "use::editing", "works-with::text"]
    assert st[0]["Section"] == "x"
    with pytest.raises(ValueError, match=r"Packages, line 2: expected 'Field: value'"):
        list(D.stanzas("Package: a\nno colon here\n", "Packages"))
    with pytest.raises(ValueError, match=r"Packages, line 1: a continuation line"):
        list(D.stanzas(" stray\n", "Packages"))


def test_read_index_decompresses_by_content(tmp_path):
    data = b"Package: a\nTag: use::editing\n"
    (tmp_path / "plain").write_bytes(data)
    (tmp_path / "p.gz").write_bytes(gzip.compress(data))
    (tmp_path / "p.bz2").write_bytes(bz2.compress(data))
    (tmp_path / "p.xz").write_bytes(lzma.compress(data))
    (tmp_path / "xz-without-suffix").write_bytes(lzma.compress(data))
    for name in ("plain", "p.gz", "p.bz2", "p.xz", "xz-without-suffix"):
        assert D.read_index(tmp_path / name) == data, name


@pytest.mark.skipif(shutil.which("lz4") is None or not os.path.isfile("/usr/lib/apt/apt-helper"),
                    reason="needs the lz4 command to write the file and apt's apt-helper to read it")
def test_read_index_lz4_as_apt_stores_it(tmp_path):
    data = b"Package: a\nTag: use::editing\n" * 100
    (tmp_path / "Packages").write_bytes(data)
    subprocess.run(["lz4", "-q", str(tmp_path / "Packages"), str(tmp_path / "Packages.lz4")], check=True)
    assert (tmp_path / "Packages.lz4").read_bytes()[:4] == b"\x04\x22\x4d\x18"
    assert D.read_index(tmp_path / "Packages.lz4") == data


def test_release_fields_read_clearsigned_and_plain():
    for clearsigned in (True, False):
        fields, sums = D.release_fields(release_text(b"p", b"t", clearsigned))
        assert fields["Codename"] == "bookworm" and fields["Version"] == "12.99"
        assert fields["Date"] == "Sat, 01 Jan 2000 10:00:00 UTC" and "MD5Sum" not in fields
        assert sums == {"main/binary-amd64/Packages": hashlib.sha256(b"p").hexdigest(),
                        "main/i18n/Translation-en": hashlib.sha256(b"t").hexdigest()}


def test_read_packages_joins_the_translation_and_drops_untagged(tmp_path):
    write_index(tmp_path)
    rows, sha = D.read_packages(tmp_path / "Packages", tmp_path / "Translation-en")
    names = [r["package"] for r in rows]
    assert "untagged" not in names and "empty-tag" not in names
    assert len(rows) == len(corpus()) - 2
    first = rows[0]
    assert first["package"] == "libproj01" and first["source"] == "proj0"  # " (1.0-2)" stripped
    assert rows[2]["source"] == "proj0"  # no Source field: the package name
    assert first["tags"] == ["devel::library", "use::editing", "works-with::image"]  # Tag over two lines
    assert first["text"] == ("library of project 0\nProject 0 does useful things for use::editing users.\n"
                             "Version 0 adds more.")
    assert sha["Packages"] == hashlib.sha256((tmp_path / "Packages").read_bytes()).hexdigest()


def test_grouped_split_keeps_groups_together_and_is_deterministic():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 120, size=400).astype(str)
    labels = rng.random((400, 6)) < 0.3
    a = grouped_split(labels, groups, (0.8, 0.1, 0.1), seed=3)
    assert all(len(set(a[groups == g])) == 1 for g in set(groups))
    assert set(a) == set(SPLITS) and 0.6 < (a == "train").mean() < 0.95
    assert np.array_equal(a, grouped_split(labels, groups, (0.8, 0.1, 0.1), seed=3))
    assert not np.array_equal(a, grouped_split(labels, groups, (0.8, 0.1, 0.1), seed=4))
    # the order of the rows does not change a group's split
    order = rng.permutation(400)
    shuffled = grouped_split(labels[order], groups[order], seed=3)
    assert np.array_equal(shuffled, grouped_split(labels, groups, seed=3)[order])


# --------------------------------------------------------------------------- the dataset

def test_load_from_a_folder(tmp_path):
    folder = write_index(tmp_path / "index")
    ds = load_dataset("debtags", path=folder, min_count=2, seed=0)
    # 94 tagged packages; dup-b and dup-c repeat dup-a's description; rare-one keeps use::editing
    assert len(ds) == 92
    assert not any("without tags" in t or "Empty Tag" in t for t in ds.texts)
    shared = [i for i, t in enumerate(ds.texts) if t.startswith("the same description")]
    assert len(shared) == 1  # same md5 (dup-b) and same text under another md5 (dup-c): kept once
    kept = {n for n, v in zip(ds.label_names, ds.labels[shared[0]]) if v}
    assert kept == {"use::editing", "role::program"}  # the first package's tags, not merged
    assert "special::rare" not in ds.label_names  # one package < min_count
    assert set(ds.label_names) == {"devel::library", "role::devel-lib", "role::program", "use::editing",
                                   "use::viewing", "works-with::image", "works-with::text"}
    assert set(ds.splits) == set(SPLITS)
    source = source_of_text(folder)
    by_source = {}
    for text, split in zip(ds.texts, ds.splits):
        by_source.setdefault(source[text], set()).add(split)
    assert len(by_source) == 32 and all(len(s) == 1 for s in by_source.values())  # no source in two splits
    again = load_dataset("debtags", path=folder, min_count=2, seed=0)
    assert np.array_equal(ds.splits, again.splits) and ds.texts == again.texts
    other = load_dataset("debtags", path=folder, min_count=2, seed=1)
    assert not np.array_equal(ds.splits, other.splits)


def test_facets_and_min_count(tmp_path):
    folder = write_index(tmp_path)
    ds = load_dataset("debtags", path=folder, facets=("use", "works-with"), min_count=1)
    assert ds.label_names == ["use::editing", "use::viewing", "works-with::image", "works-with::text"]
    assert ds.labels.sum(1).min() >= 1  # packages with tags of other facets only are dropped
    assert ds.provenance["facets"] == ["use", "works-with"]
    assert load_dataset("debtags", path=folder, facets="special", min_count=1).label_names == ["special::rare"]
    with pytest.raises(ValueError, match=r"facet\(s\) \['usee'\] not in .*its facets are \['devel', 'role'"):
        load_dataset("debtags", path=folder, facets=["usee"])
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        load_dataset("debtags", path=folder, min_count=0)
    many = load_dataset("debtags", path=folder, min_count=20)
    counts = dict(zip(many.label_names, many.labels.sum(0)))
    assert "works-with::image" not in counts  # 16 packages
    assert all(c >= 20 for c in counts.values()) and len(counts) == 6


def test_files_by_path_compressed_and_apt_names(tmp_path):
    ref = load_dataset("debtags", path=write_index(tmp_path / "plain"), min_count=2)
    pk, tr = (tmp_path / "plain" / "Packages").read_bytes(), (tmp_path / "plain" / "Translation-en").read_bytes()
    (tmp_path / "Packages.xz").write_bytes(lzma.compress(pk))
    (tmp_path / "Translation-en.gz").write_bytes(gzip.compress(tr))
    ds = load_dataset("debtags", packages_path=tmp_path / "Packages.xz",
                      translation_path=tmp_path / "Translation-en.gz", min_count=2)
    assert ds.texts == ref.texts and np.array_equal(ds.splits, ref.splits)
    assert ds.provenance["packages_sha256"] == ref.provenance["packages_sha256"]  # of the decompressed content
    assert ds.provenance["date"] is None and ds.provenance["checked_against_release"] is False  # no Release beside
    lists = tmp_path / "lists"  # an apt lists folder
    write_index(lists, names=(f"{LISTS}_main_binary-amd64_Packages", f"{LISTS}_main_i18n_Translation-en",
                              f"{LISTS}_InRelease"))
    from_lists = load_dataset("debtags", path=lists, min_count=2)
    assert from_lists.texts == ref.texts and from_lists.provenance["checked_against_release"] is True
    with pytest.raises(ValueError, match="give both packages_path= and translation_path="):
        load_dataset("debtags", packages_path=tmp_path / "Packages.xz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Packages file .* in .*empty; give packages_path="):
        load_dataset("debtags", path=tmp_path / "empty")
    (tmp_path / "Packages.gz").write_bytes(gzip.compress(pk))
    with pytest.raises(ValueError, match=r"several Packages files .*Packages.gz, Packages.xz"):
        load_dataset("debtags", path=tmp_path)


def test_provenance_is_recorded_and_checked(tmp_path):
    folder = write_index(tmp_path)
    ds = load_dataset("debtags", path=folder, min_count=2)
    p = ds.provenance
    assert (p["codename"], p["version"], p["suite"], p["origin"]) == ("bookworm", "12.99", "oldstable", "Debian")
    assert p["date"] == "Sat, 01 Jan 2000 10:00:00 UTC" and p["checked_against_release"] is True
    assert p["packages_sha256"] == hashlib.sha256((folder / "Packages").read_bytes()).hexdigest()
    assert p["translation_sha256"] == hashlib.sha256((folder / "Translation-en").read_bytes()).hexdigest()
    assert (p["tagged_packages"], p["distinct_descriptions"], p["tags"], p["min_count"]) == (94, 92, 8, 2)
    json.dumps(p)  # goes into metrics.json as it is
    assert ds.sample(5, seed=0).provenance == p and ds.split("test").drop_rare_labels(1).provenance == p
    assert load_dataset("csv", path=_csv(tmp_path), label_sep="|").provenance == {}  # other datasets: none
    with open(folder / "Packages", "a") as f:
        f.write("\nPackage: added-later\nTag: use::editing\n")
    with pytest.raises(ValueError, match="sha256 of Packages .* differs from the one its Release file"):
        load_dataset("debtags", path=folder)


def _csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,labels\n" + "".join(f"doc {i},{'a|b' if i % 2 else 'a'}\n" for i in range(30)))
    return path


def test_stats_command_prints_the_same_tables(tmp_path, capsys):
    folder = write_index(tmp_path / "index")
    assert main(["stats", "debtags", "--set", f"path={folder}", "--set", "min_count=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["docs", "labels_present", "labels_per_doc", "labels_per_labelled_doc",
                              "share_unlabelled", "words_per_doc"]
    assert [line.split()[0] for line in out[1:4]] == list(SPLITS)
    assert sum(float(line.split()[1]) for line in out[1:4]) == 92
    assert out[4].split() == ["group"] and [line.split()[0] for line in out[5:8]] == ["head", "medium", "tail"]
    assert sum(int(line.split()[1]) for line in out[5:8]) == 7


def test_run_records_the_provenance(tiny_config, tmp_path):
    from abalone_core.training.runs import run

    folder = write_index(tmp_path / "index")
    m = run(tiny_config(objective="frozen", dataset="debtags", dataset_kwargs={"path": str(folder), "min_count": 2},
                        subset={"train": 40}), progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["dataset_provenance"]["packages_sha256"] == saved["dataset_provenance"]["packages_sha256"]
    assert saved["dataset_provenance"]["date"] == "Sat, 01 Jan 2000 10:00:00 UTC"


# --------------------------------------------------------------------------- apt

FAKE_APT = """#!{python}
import os, pathlib, shutil, sys
args = sys.argv[1:]
opts = dict(a.split("=", 1) for a in args if "=" in a)
sources = pathlib.Path(opts["Dir::Etc::sourcelist"]).read_text()
with open(os.environ["FAKE_APT_LOG"], "a") as log:
    log.write(repr(args) + "\\n" + sources)
if os.environ.get("FAKE_APT_FAIL"):
    print("Err:1 http://deb.debian.org/debian bookworm InRelease", file=sys.stderr)
    print("E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
          "Temporary failure resolving 'deb.debian.org'", file=sys.stderr)
    sys.exit(100)
src = pathlib.Path(os.environ["FAKE_APT_SOURCE"])
lists = pathlib.Path(opts["Dir::State::Lists"])
prefix = "deb.debian.org_debian_dists_" + sources.split()[-2]  # "deb [...] URL SUITE main"
shutil.copy(src / "Packages.xz", lists / (prefix + "_main_binary-amd64_Packages.xz"))
shutil.copy(src / "Translation-en", lists / (prefix + "_main_i18n_Translation-en"))
shutil.copy(src / "Release", lists / (prefix + "_InRelease"))
"""


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """An ``apt-get`` on PATH that logs its call and fills the lists folder it is given."""
    source = write_index(tmp_path / "archive")
    (source / "Packages.xz").write_bytes(lzma.compress((source / "Packages").read_bytes()))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(FAKE_APT.replace("{python}", sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APT_LOG", str(tmp_path / "apt.log"))
    monkeypatch.setenv("FAKE_APT_SOURCE", str(source))
    return tmp_path / "apt.log"


def test_fetch_with_private_apt_lists_and_cache(tmp_path, fake_apt):
    cache = tmp_path / "cache"
    ds = load_dataset("debtags", data_dir=cache, min_count=2)
    log = fake_apt.read_text()
    assert log.count("'update'") == 1
    assert f"'Dir::State::Lists={cache / 'debtags'}" in log and "'Dir::Etc::sourceparts=-'" in log
    assert "'Acquire::Languages=en'" in log and "'APT::Update::Error-Mode=any'" in log
    assert "] http://deb.debian.org/debian bookworm main\n" in log and "arch=amd64" in log
    folder = cache / "debtags" / "bookworm"
    assert sorted(p.name for p in (cache / "debtags").iterdir()) == ["bookworm"]  # apt's folder is gone
    assert sorted(p.name for p in folder.iterdir()) == ["Packages", "Release", "Translation-en"]
    assert (folder / "Packages").read_bytes() == (tmp_path / "archive" / "Packages").read_bytes()  # decompressed
    assert len(ds) == 92 and ds.provenance["checked_against_release"] is True
    assert ds.provenance["mirror"] == "http://deb.debian.org/debian" and ds.provenance["codename"] == "bookworm"
    again = load_dataset("debtags", data_dir=cache, min_count=2)
    assert fake_apt.read_text() == log  # cached: apt not called again
    assert again.texts == ds.texts
    load_dataset("debtags", data_dir=cache, min_count=2, mirror="http://mirror.example/debian", release="trixie")
    assert "] http://mirror.example/debian trixie main\n" in fake_apt.read_text()
    with pytest.raises(ValueError, match="release='../x' is not a Debian release name"):
        load_dataset("debtags", data_dir=cache, release="../x")


def test_apt_failure_says_what_to_do(tmp_path, fake_apt, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_APT_FAIL", "1")
    with pytest.raises(RuntimeError, match=r"`apt-get update` of Debian bookworm main from http://deb.debian.org/"
                                           r"debian failed \(exit 100: E: Failed to fetch.*path=.*packages_path="):
        load_dataset("debtags", data_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "debtags" / "bookworm").exists()
    assert main(["stats", "debtags", "--set", f"data_dir={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `apt-get update` of Debian bookworm") and err.count("\n") == 1
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError, match=r"apt-get \(Debian's package tool\) is not available .*path="):
        load_dataset("debtags", data_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- the real index

@pytest.mark.slow
def test_real_debtags(tmp_path):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available: the debtags index is fetched with apt")
    try:
        folder = D.fetch_debtags(tmp_path)
    except RuntimeError as err:
        pytest.skip(f"Debian's archive is not reachable with apt here: {err}")
    ds = load_dataset("debtags", data_dir=tmp_path, min_count=1)
    assert ds.provenance["codename"] == "bookworm" and ds.provenance["checked_against_release"]
    assert ds.provenance["tagged_packages"] > 25_000 and len(ds) > 20_000
    assert len(ds.label_names) > 400 and {"devel::library", "role::program"} <= set(ds.label_names)
    source = source_of_text(folder)
    splits_of = {}
    for text, split in zip(ds.texts, ds.splits):
        splits_of.setdefault(source[text], set()).add(split)
    assert sum(len(s) > 1 for s in splits_of.values()) == 0
    assert 0.75 < (ds.splits == "train").mean() < 0.85
