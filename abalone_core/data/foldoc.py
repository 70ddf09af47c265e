"""The ``foldoc`` dataset: the Free On-line Dictionary of Computing, labelled by subject tags.

The dictionary comes from the Debian package ``dict-foldoc`` (``apt-get download``,
unpacked with ``dpkg-deb``; the two dictd files are cached in ``data_dir/foldoc/``).
Labels are the subject tags that open a definition, such as ``<language>`` or
``<networking, standard>``; tags carried by fewer than ``min_count`` entries are not
used, and the entries are split with iterative stratification.
"""
from __future__ import annotations

import gzip
import logging
import pathlib
import re
import shutil
import subprocess
import tempfile

import pandas as pd

from .build import _write_atomically, assemble, binarize
from .dataset import MultiLabelDataset
from .registry import data_dir as resolve_data_dir
from .registry import register_dataset

logger = logging.getLogger(__name__)

FOLDOC_FILES = ("foldoc.index", "foldoc.dict.dz")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}
# A subject tag block opens a paragraph, optionally after a sense number ("2. ") or a
# pronunciation ("/nan'oh/ "): "<language>" or "<networking, standard>". Blocks may
# follow each other. Angle brackets elsewhere (e-mail addresses, BNF, HTML) are text.
_TAG_PREFIX = re.compile(r"^(?:/[^/\n]*/\s+)?(?:\d+\.\s+)?")
_TAG_BLOCK = re.compile(r"^<([^<>@=]+)>(?!\s*::=)\s*")
_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 /&+.'-]*$")
_DATE_STAMP = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")


def dictd_number(code: str) -> int:
    """Decode a dictd index number (base 64, digits A-Z a-z 0-9 + /, most significant first)."""
    if not code:
        raise ValueError("empty dictd number")
    n = 0
    for ch in code:
        if ch not in _B64_VALUE:
            raise ValueError(f"invalid dictd base64 digit {ch!r} in {code!r}")
        n = n * 64 + _B64_VALUE[ch]
    return n


def read_dictd(index_path, dict_path) -> list:
    """Entries of a dictd dictionary as (headwords, raw entry text), one per distinct entry.

    The index maps headwords to (offset, length) in the uncompressed dictionary; aliases
    share an entry, which is returned once with all its headwords.
    """
    if str(dict_path).endswith((".dz", ".gz")):
        with gzip.open(dict_path, "rb") as f:
            data = f.read()
    else:
        data = pathlib.Path(dict_path).read_bytes()
    entries: dict = {}
    with open(index_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise ValueError(f"{index_path}:{lineno}: expected 'headword<TAB>offset<TAB>length'")
            key = (dictd_number(parts[1]), dictd_number(parts[2]))
            entries.setdefault(key, []).append(parts[0])
    out = []
    for (off, length), heads in sorted(entries.items()):
        if off + length > len(data):
            raise ValueError(f"entry {heads[0]!r} points past the end of {dict_path}")
        out.append((heads, data[off:off + length].decode("utf-8", errors="replace")))
    return out


def parse_foldoc_entry(raw: str) -> tuple:
    """Subject tags and definition text of one FOLDOC entry.

    The entry starts with its headword line(s) and a blank line; the definition
    paragraphs are indented by three spaces. Tags are taken from tag blocks that open a
    paragraph (see ``_TAG_BLOCK``); comma-separated names are split. The text is the
    definition without headword lines, tag blocks and the trailing "(YYYY-MM-DD)"
    stamp, with ``{cross reference}`` braces removed and whitespace collapsed
    (paragraphs joined by newlines).

    Returns:
        (sorted list of tags, text).
    """
    _, _, body = raw.strip("\n").partition("\n\n")
    tags, paragraphs = set(), []
    for para in re.split(r"\n[ \t]*\n", body):
        if not para.strip():
            continue
        opens_paragraph = para.startswith("   ") and not para.startswith("    ")
        text = para.strip()
        if opens_paragraph:
            prefix = _TAG_PREFIX.match(text).group(0)
            rest = text[len(prefix):]
            found = False
            while True:
                m = _TAG_BLOCK.match(rest)
                if not m:
                    break
                names = [re.sub(r"\s+", " ", x).strip() for x in m.group(1).split(",")]
                if not all(_TAG_NAME.match(x) for x in names):
                    break
                tags.update(names)
                rest = rest[m.end():]
                found = True
            if found:
                text = prefix + rest
        text = re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()
        if text and not _DATE_STAMP.match(text):
            paragraphs.append(text)
    return sorted(tags), "\n".join(paragraphs)


def fetch_foldoc(root) -> pathlib.Path:
    """Folder holding foldoc.index and foldoc.dict.dz, fetched with apt-get the first time."""
    target = pathlib.Path(root) / "foldoc"
    if all((target / f).is_file() for f in FOLDOC_FILES):
        return target
    hint = "Run `apt-get update` first, or pass dict_dir= to a folder holding foldoc.index and foldoc.dict.dz."
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(["apt-get", "download", "dict-foldoc"], cwd=tmp, capture_output=True, text=True)
        except FileNotFoundError as err:
            raise RuntimeError(f"apt-get is not available on this machine. {hint}") from err
        debs = sorted(pathlib.Path(tmp).glob("dict-foldoc_*.deb"))
        if proc.returncode != 0 or not debs:
            raise RuntimeError(f"`apt-get download dict-foldoc` failed (exit {proc.returncode}). {hint}\n"
                               f"{(proc.stderr or proc.stdout)[-2000:]}")
        unpacked = pathlib.Path(tmp) / "deb"
        proc = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`dpkg-deb -x {debs[0].name}` failed: {proc.stderr[-2000:]}")
        for f in FOLDOC_FILES:
            src = unpacked / "usr" / "share" / "dictd" / f
            if not src.is_file():
                raise RuntimeError(f"{f} not found in {debs[0].name}")
            with open(src, "rb") as fh:
                _write_atomically(target / f, lambda dst: shutil.copyfileobj(fh, dst))
    return target


def _find_foldoc_files(folder) -> tuple:
    folder = pathlib.Path(folder)
    for base in (folder, folder / "usr" / "share" / "dictd"):
        if all((base / f).is_file() for f in FOLDOC_FILES):
            return base / FOLDOC_FILES[0], base / FOLDOC_FILES[1]
    raise FileNotFoundError(f"{' and '.join(FOLDOC_FILES)} not found in {folder}")


def parse_foldoc(index_path, dict_path, *, min_count: int = 10, split_sizes=(0.8, 0.1, 0.1), seed: int = 0,
                 name: str = "foldoc") -> MultiLabelDataset:
    """FOLDOC entries with at least one tag carried by >= ``min_count`` entries, stratified split.

    ``min_count`` defines the label set before any split (it counts all entries, and
    entries left without a kept tag are dropped); after the split the rare-label rule
    drops tags that no training entry carries (``min_train_count=1``).
    Meta entries (headwords starting with ``00-database`` or ``00database``) are skipped.
    """
    texts, tag_lists = [], []
    for heads, raw in read_dictd(index_path, dict_path):
        if any(h.lower().startswith(("00-database", "00database")) for h in heads):
            continue
        tags, text = parse_foldoc_entry(raw)
        if tags and text:
            texts.append(text)
            tag_lists.append(tags)
    counts = pd.Series([t for row in tag_lists for t in row]).value_counts()
    kept = sorted(counts.index[counts >= min_count])
    logger.info("%s: %d tagged entries, %d tags, %d kept with >= %d entries",
                name, len(texts), len(counts), len(kept), min_count)
    keep_set = set(kept)
    rows = [i for i, row in enumerate(tag_lists) if keep_set.intersection(row)]
    labels, names = binarize([[t for t in tag_lists[i] if t in keep_set] for i in rows], kept)
    return assemble(name, [texts[i] for i in rows], labels, names, None,
                    min_train_count=1, split_sizes=split_sizes, seed=seed)


@register_dataset("foldoc")
def load_foldoc(*, data_dir=None, dict_dir=None, min_count: int = 10, split_sizes=(0.8, 0.1, 0.1),
                seed: int = 0) -> MultiLabelDataset:
    """FOLDOC subject-tag classification; ``dict_dir`` skips the apt-get download.

    The raw dictionary files are cached in ``data_dir/foldoc``; the parse and the
    split are recomputed (a few seconds).
    """
    folder = dict_dir if dict_dir is not None else fetch_foldoc(resolve_data_dir(data_dir))
    index_path, dict_path = _find_foldoc_files(folder)
    return parse_foldoc(index_path, dict_path, min_count=min_count, split_sizes=split_sizes, seed=seed)
