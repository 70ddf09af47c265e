"""The ``debtags`` dataset: Debian packages, described in English, labelled by their debtags.

A document is a binary package of one Debian release (component ``main``, architecture
amd64): its short description, then the paragraphs of its long description. Its labels
are the package's debtags (the ``Tag:`` field, ``facet::value`` such as
``devel::library`` or ``use::editing``): hundreds of tags with a long tail.

The two index files come from Debian's archive through apt, for a pinned release
(``bookworm`` by default): ``apt-get update`` with a private sources.list, lists and cache
folder, so the system's package lists are never touched. The ``Packages`` file carries
``Tag:`` and ``Description-md5``; ``Translation-en`` carries ``Description-en:`` keyed by
that md5. Both are cached decompressed in ``data_dir/debtags/<release>/`` with the
release's ``Release`` file (whose sha256 list they are checked against). Without apt or
the archive, give the files by path instead: ``path=`` a folder holding both (an apt lists
folder will do), or ``packages_path=`` and ``translation_path=`` (plain, .xz, .gz, .bz2 or,
with apt's ``apt-helper``, .lz4 / .zst).

Binary packages built from one source package (``libfoo1``, ``libfoo-dev``, ``foo-doc``)
share most of their description, so each source package goes whole to one split
(:func:`abalone_core.data.splits.grouped_split`).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import logging
import lzma
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pandas as pd

from abalone_core import atomic

from .build import assemble, binarize
from .dataset import MultiLabelDataset
from .registry import data_dir as resolve_data_dir
from .registry import register_dataset
from .splits import grouped_split

logger = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
COMPONENT, ARCHITECTURE = "main", "amd64"
# Files of the cache folder, and where the Release file lists the uncompressed index files.
RELEASE, PACKAGES, TRANSLATION = "Release", "Packages", "Translation-en"
INDEX_PATHS = {PACKAGES: f"{COMPONENT}/binary-{ARCHITECTURE}/Packages",
               TRANSLATION: f"{COMPONENT}/i18n/Translation-en"}
_RELEASE_NAME = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_MAGIC = {b"\x1f\x8b": "gz", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2", b"\x04\x22\x4d\x18": "lz4",
          b"\x28\xb5\x2f\xfd": "zst"}
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------- reading the index files

def read_index(path) -> bytes:
    """Content of an index file, decompressed (the format is read from its first bytes).

    gzip, xz and bzip2 are read by Python; lz4 and zstd (how apt may store its lists) by
    ``apt-helper cat-file``, which needs the file name to end in ``.lz4`` / ``.zst``.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        head = f.read(6)
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
    if kind is None:
        return path.read_bytes()
    if kind in ("gz", "xz", "bz2"):
        opener = {"gz": gzip.open, "xz": lzma.open, "bz2": bz2.open}[kind]
        with opener(path, "rb") as f:
            return f.read()
    helper = shutil.which("apt-helper") or "/usr/lib/apt/apt-helper"
    how = f"decompress it first (`{'lz4 -d' if kind == 'lz4' else 'zstd -d'} {path}`) and give the result"
    if not os.path.isfile(helper):
        raise ValueError(f"{path} is {kind}-compressed and apt's apt-helper is not available to read it; {how}")
    proc = subprocess.run([helper, "cat-file", str(path)], capture_output=True)
    out = proc.stdout
    if proc.returncode != 0 or any(out.startswith(m) for m in _MAGIC):
        raise ValueError(f"{path}: `apt-helper cat-file` could not decompress this {kind} file "
                         f"(its name must end in .{kind}); {how}")
    return out


def stanzas(text: str, where: str = "index file"):
    """Paragraphs of a Debian control file (deb822) as ``{field: value}``.

    Paragraphs are separated by blank lines; a line starting with a space or a tab
    continues the previous field, and is appended to its value after a newline, as written.

    Args:
        text: the file's content.
        where: the file's name for errors.
    Yields:
        one dict per paragraph (field names as written, values stripped at the ends).
    """
    fields, key = {}, None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t":
            if key is None:
                raise ValueError(f"{where}, line {lineno}: a continuation line (starting with a space) opens a "
                                 "paragraph; the file is damaged, fetch or copy it again")
            fields[key] += "\n" + line
        else:
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"{where}, line {lineno}: expected 'Field: value', got {line[:60]!r}; "
                                 "is this a Debian Packages / Translation file?")
            key = key.strip()
            fields[key] = value.strip()
    if fields:
        yield fields


def description_text(value: str) -> str:
    """A Debian description (short line, then the long description) as plain text.

    In the long description each line starts with a space and a line holding only
    " ." is a paragraph break. Returns the short description and the paragraphs, one a
    line, whitespace collapsed.
    """
    short, _, long = value.partition("\n")
    paragraphs, current = [_SPACE.sub(" ", short).strip()], []
    for line in long.split("\n"):
        if line.strip() == ".":
            paragraphs.append(" ".join(current))
            current = []
        else:
            current.append(line.strip())
    paragraphs.append(" ".join(current))
    return "\n".join(p for p in (_SPACE.sub(" ", x).strip() for x in paragraphs) if p)


def tag_list(value: str) -> list:
    """The tags of a ``Tag:`` value (comma-separated, possibly over several lines), in order."""
    return [t for t in (x.strip() for x in value.split(",")) if t]


def facet_of(tag: str) -> str:
    """``devel::library`` -> ``devel``."""
    return tag.split("::", 1)[0]


def release_fields(text: str) -> tuple:
    """Fields of a Release (or clear-signed InRelease) file and its sha256 list.

    Returns:
        ({field: value} without the checksum lists, {path: sha256}).
    """
    if text.lstrip().startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        _, _, text = text.partition("\n\n")  # armour header lines end with a blank line
        text = text.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    fields = next(stanzas(text, "Release file"), {})
    sums = {}
    for line in fields.pop("SHA256", "").split("\n"):
        parts = line.split()
        if len(parts) == 3:
            sums[parts[2]] = parts[0]
    return {k: v for k, v in fields.items() if k not in ("MD5Sum", "SHA1", "SHA512")}, sums


def read_packages(packages_path, translation_path) -> tuple:
    """Tagged packages of a Packages file with their English descriptions.

    Args:
        packages_path: the ``Packages`` file (``Package``, ``Source``, ``Tag``,
            ``Description-md5`` and possibly ``Description``).
        translation_path: ``Translation-en`` (``Description-md5``, ``Description-en``).
    Returns:
        (rows, sha256): rows are dicts ``package``, ``source`` (the ``Source:`` name
        without its " (version)", the package name when absent), ``tags`` (list),
        ``md5`` and ``text``, in file order, packages without tags left out; sha256 is
        {"Packages": ..., "Translation-en": ...} of the decompressed content.
    """
    content = {name: read_index(p) for name, p in ((PACKAGES, packages_path), (TRANSLATION, translation_path))}
    sha = {name: hashlib.sha256(b).hexdigest() for name, b in content.items()}
    long = {}
    for st in stanzas(content.pop(TRANSLATION).decode("utf-8", errors="replace"), str(translation_path)):
        md5, desc = st.get("Description-md5"), st.get("Description-en")
        if md5 and desc:
            long.setdefault(md5, desc)
    if not long:
        raise ValueError(f"{translation_path}: no 'Description-en' entries; give the Translation-en file of the "
                         "same release and component")
    rows, seen, untranslated = [], 0, 0
    for st in stanzas(content.pop(PACKAGES).decode("utf-8", errors="replace"), str(packages_path)):
        if "Package" not in st:
            continue
        seen += 1
        tags = tag_list(st.get("Tag", ""))
        if not tags:
            continue
        md5 = st.get("Description-md5")
        desc = long.get(md5) if md5 else None
        if desc is None:
            untranslated += 1
            desc = st.get("Description", "")
        source = st.get("Source", "").split("(")[0].strip() or st["Package"]
        rows.append({"package": st["Package"], "source": source, "tags": tags, "md5": md5,
                     "text": description_text(desc)})
    if not seen:
        raise ValueError(f"{packages_path}: no 'Package' entries; give the Packages file of a Debian release")
    if untranslated:
        logger.info("%s: %d tagged package(s) without a Translation-en entry use their own Description field",
                    packages_path, untranslated)
    return rows, sha


# --------------------------------------------------------------------------- apt

def fetch_debtags(root, release: str = "bookworm", mirror: str = DEBIAN_MIRROR) -> pathlib.Path:
    """Folder holding the release's Release, Packages and Translation-en, fetched with apt the first time.

    ``apt-get update`` runs on a private sources.list naming only ``<mirror> <release>
    main`` (amd64, Packages and Translations), with private lists and cache folders in a
    temporary folder under ``root/debtags``; the system's lists are not read or changed.
    The index files are then written, decompressed, to ``root/debtags/<release>/``.
    """
    if not _RELEASE_NAME.match(str(release)):
        raise ValueError(f"release={release!r} is not a Debian release name such as 'bookworm' or 'trixie'")
    target = pathlib.Path(root) / "debtags" / release
    if all((target / f).is_file() for f in (RELEASE, PACKAGES, TRANSLATION)):
        return target
    hint = (f"check the network, or pass mirror= (a Debian mirror that still carries {release}), or give the "
            f"index files: path= a folder holding Packages and Translation-en of {release} {COMPONENT} "
            f"({mirror}/dists/{release}/{INDEX_PATHS[PACKAGES]}.xz and {INDEX_PATHS[TRANSLATION]}.xz), "
            "or packages_path= and translation_path=")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{release}-apt-", dir=target.parent) as tmp:
        tmp = pathlib.Path(tmp)
        lists, cache = tmp / "lists", tmp / "cache"
        (lists / "partial").mkdir(parents=True)
        cache.mkdir()
        signed = f" signed-by={DEBIAN_KEYRING}" if os.path.isfile(DEBIAN_KEYRING) else ""
        (tmp / "sources.list").write_text(
            f"deb [arch={ARCHITECTURE} target=Packages,Translations{signed}] {mirror} {release} {COMPONENT}\n")
        cmd = ["apt-get", "update", "-o", f"Dir::Etc::sourcelist={tmp / 'sources.list'}",
               "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}",
               "-o", "Acquire::Languages=en", "-o", "APT::Get::List-Cleanup=0",
               "-o", "Acquire::GzipIndexes=false", "-o", "APT::Update::Error-Mode=any"]
        logger.info("fetching the %s %s index with apt-get update", release, COMPONENT)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        except FileNotFoundError:
            raise RuntimeError(f"apt-get (Debian's package tool) is not available on this machine; {hint}") from None
        found = {name: _one(lists, pattern) for name, pattern in (
            (RELEASE, f"*_dists_{release}_InRelease"),
            (PACKAGES, f"*_dists_{release}_{COMPONENT}_binary-{ARCHITECTURE}_Packages*"),
            (TRANSLATION, f"*_dists_{release}_{COMPONENT}_i18n_Translation-en*"))}
        if found[RELEASE] is None:
            found[RELEASE] = _one(lists, f"*_dists_{release}_Release")
        if proc.returncode != 0 or None in found.values():
            errors = [x for x in (proc.stderr or "").splitlines() if x.startswith("E:")]
            why = errors[0] if errors else (proc.stderr or proc.stdout).strip()[-300:] or "no index files"
            keyring = (" (install the debian-archive-keyring package, apt cannot check the release's signature)"
                       if "NO_PUBKEY" in (proc.stderr or "") else "")
            raise RuntimeError(f"`apt-get update` of Debian {release} {COMPONENT} from {mirror} failed "
                               f"(exit {proc.returncode}: {why}){keyring}; {hint}")
        target.mkdir(exist_ok=True)
        for name in (PACKAGES, TRANSLATION, RELEASE):  # Release last: the three files make the cache
            atomic.write_bytes(target / name, read_index(found[name]))
    return target


def _one(folder: pathlib.Path, pattern: str):
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and ".diff" not in p.name)
    return files[0] if files else None


def find_index_files(folder) -> tuple:
    """(Packages, Translation-en, Release or None) in a folder: plain names (``Packages.xz``)
    or apt's list names (``..._dists_bookworm_main_binary-amd64_Packages``)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"debtags: path={str(folder)!r} is not a folder; give the folder holding Packages "
                                "and Translation-en, or packages_path= and translation_path=")
    found = []
    for plain, listed in ((PACKAGES, f"*_{COMPONENT}_binary-{ARCHITECTURE}_Packages"),
                          (TRANSLATION, f"*_{COMPONENT}_i18n_Translation-en")):
        files = sorted({p for pat in (plain, plain + ".*", listed, listed + ".*") for p in folder.glob(pat)
                        if p.is_file() and not p.name.endswith((".diff", ".part"))})
        if not files:
            raise FileNotFoundError(f"debtags: no {plain} file (or {plain}.xz / .gz) in {folder}; give "
                                    f"packages_path= and translation_path= instead")
        if len(files) > 1:
            raise ValueError(f"debtags: several {plain} files in {folder} ({', '.join(p.name for p in files)}); "
                             "give packages_path= and translation_path= to choose")
        found.append(files[0])
    return found[0], found[1], _release_beside(found[0])


def _release_beside(packages_path) -> pathlib.Path | None:
    """The Release / InRelease file in the folder of ``packages_path`` (apt's name or a plain one), if one."""
    folder = pathlib.Path(packages_path).parent
    name = pathlib.Path(packages_path).name
    prefix = name.split(f"_{COMPONENT}_binary-")[0] if f"_{COMPONENT}_binary-" in name else None
    candidates = [f"{prefix}_InRelease", f"{prefix}_Release"] if prefix else []
    candidates += [RELEASE, "InRelease"]
    return next((folder / c for c in candidates if (folder / c).is_file()), None)


# --------------------------------------------------------------------------- the dataset

def parse_debtags(packages_path, translation_path, release_path=None, *, facets=None, min_count: int = 10,
                  split_sizes=(0.8, 0.1, 0.1), seed: int = 0, mirror: str | None = None,
                  name: str = "debtags") -> MultiLabelDataset:
    """Tagged packages with the tags carried by >= ``min_count`` packages, split by source package.

    Steps, in order: tags outside ``facets`` are removed and packages left without a
    tag dropped; packages whose description repeats an earlier one (same
    ``Description-md5`` or same text) are dropped, keeping the first in the file's order
    (the tags of the dropped ones are not merged); ``min_count`` defines the label set
    before any split, counting all remaining packages, and packages without a kept tag
    are dropped; source packages are split with iterative stratification on the union of
    their packages' tags; after the split the rare-label rule drops tags that no training
    package carries (``min_train_count=1``), as for ``foldoc``.

    Args:
        packages_path, translation_path: the two index files (see :func:`read_packages`).
        release_path: the release's Release or InRelease file, or None: its date and
            version go to the provenance, and the index files are checked against its
            sha256 list.
        facets: facet names to keep (``("use", "works-with")``); None keeps all.
        min_count: smallest number of packages a kept tag has.
        split_sizes: (train, validation, test) shares of the source packages.
        seed: seed of the split.
        mirror: recorded in the provenance.
    Returns:
        the dataset; ``provenance`` holds the release's ``origin``, ``suite``,
        ``codename``, ``version`` and ``date``, the ``component`` and ``architecture``,
        ``mirror``, and ``packages_sha256`` / ``translation_sha256`` of the decompressed
        index files (``checked_against_release``: whether the Release file listed them).
    """
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise ValueError(f"debtags: min_count must be an integer >= 1, got {min_count!r}")
    if isinstance(facets, str):
        facets = [facets]
    rows, sha = read_packages(packages_path, translation_path)
    provenance = _provenance(release_path, sha, mirror)
    all_facets = sorted({facet_of(t) for r in rows for t in r["tags"]})
    if facets is not None:
        unknown = sorted(set(facets) - set(all_facets))
        if unknown:
            raise ValueError(f"debtags: facet(s) {unknown} not in {packages_path}; its facets are {all_facets}")
        keep = set(facets)
        rows = [dict(r, tags=[t for t in r["tags"] if facet_of(t) in keep]) for r in rows]
        rows = [r for r in rows if r["tags"]]
    tagged = len(rows)
    seen_md5, seen_text, distinct = set(), set(), []
    for r in rows:
        if (r["md5"] and r["md5"] in seen_md5) or r["text"] in seen_text or not r["text"]:
            continue
        seen_md5.add(r["md5"])
        seen_text.add(r["text"])
        distinct.append(r)
    counts = pd.Series([t for r in distinct for t in r["tags"]], dtype=object).value_counts()
    kept = sorted(counts.index[counts >= min_count])
    logger.info("%s: %d tagged packages, %d distinct descriptions, %d tags, %d kept with >= %d packages",
                name, tagged, len(distinct), len(counts), len(kept), min_count)
    keep_set = set(kept)
    rows = [dict(r, tags=[t for t in r["tags"] if t in keep_set]) for r in distinct]
    rows = [r for r in rows if r["tags"]]
    if not rows:
        raise ValueError(f"debtags: no package has a tag carried by >= {min_count} packages; lower min_count")
    labels, names = binarize([r["tags"] for r in rows], kept)
    splits = grouped_split(labels, [r["source"] for r in rows], split_sizes, seed)
    ds = assemble(name, [r["text"] for r in rows], labels, names, splits, min_train_count=1)
    provenance.update({"tagged_packages": tagged, "distinct_descriptions": len(distinct), "tags": len(counts),
                       "facets": list(facets) if facets is not None else None, "min_count": min_count})
    ds.provenance = provenance
    return ds


def _provenance(release_path, sha: dict, mirror) -> dict:
    fields, sums = release_fields(read_index(release_path).decode("utf-8", "replace")) if release_path else ({}, {})
    checked = False
    for name, key in INDEX_PATHS.items():
        listed = sums.get(key)
        if listed is not None and listed != sha[name]:
            raise ValueError(f"debtags: the sha256 of {name} ({sha[name][:16]}...) differs from the one its Release "
                             f"file {release_path} lists ({listed[:16]}...); the files are of different releases "
                             "or damaged: delete that folder (or give matching files) and load again")
        checked = checked or listed is not None
    return {"origin": fields.get("Origin"), "suite": fields.get("Suite"), "codename": fields.get("Codename"),
            "version": fields.get("Version"), "date": fields.get("Date"), "component": COMPONENT,
            "architecture": ARCHITECTURE, "mirror": mirror, "packages_sha256": sha[PACKAGES],
            "translation_sha256": sha[TRANSLATION], "checked_against_release": checked}


@register_dataset("debtags")
def load_debtags(*, data_dir=None, release: str = "bookworm", mirror: str = DEBIAN_MIRROR, path=None,
                 packages_path=None, translation_path=None, facets=None, min_count: int = 10,
                 split_sizes=(0.8, 0.1, 0.1), seed: int = 0) -> MultiLabelDataset:
    """Debian packages labelled by their debtags (see :func:`parse_debtags` for the choices).

    The index of ``release`` is fetched with apt the first time and cached in
    ``data_dir/debtags/<release>/``; ``path=`` (a folder holding Packages and
    Translation-en) or ``packages_path=`` with ``translation_path=`` use local files
    instead. The parse and the split are recomputed on every load.
    """
    if (packages_path is None) != (translation_path is None):
        raise ValueError("debtags: give both packages_path= and translation_path= (or path= a folder holding both)")
    if packages_path is not None:
        for key, p in (("packages_path", packages_path), ("translation_path", translation_path)):
            if not pathlib.Path(p).is_file():
                raise FileNotFoundError(f"debtags: {key}={str(p)!r} is not a file")
        files = (packages_path, translation_path, _release_beside(packages_path))
        mirror = None
    elif path is not None:
        files, mirror = find_index_files(path), None
    else:
        folder = fetch_debtags(resolve_data_dir(data_dir), release, mirror)
        files = (folder / PACKAGES, folder / TRANSLATION, folder / RELEASE)
    return parse_debtags(*files, facets=facets, min_count=min_count, split_sizes=split_sizes, seed=seed,
                         mirror=mirror)
