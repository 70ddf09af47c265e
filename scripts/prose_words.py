"""Words of written prose per chapter: the markdown cells of each notebook, without code
blocks, display math, table rows, admonition fences or MyST directives. Sentences that a
code cell generates from results are not counted (they are outputs, not markdown cells).

    python scripts/prose_words.py            # table of every chapter
    python scripts/prose_words.py --json F   # also write the counts as JSON
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def prose(markdown: str) -> str:
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)  # code blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)  # display math
    lines = [line for line in text.splitlines()
             if not line.lstrip().startswith(("|", ":::", "```", "{", "<"))]
    return " ".join(lines)


def words(text: str) -> int:
    return len(re.findall(r"[A-Za-z][A-Za-z'\-]*", text))


def chapter_words(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(words(prose(c.source)) for c in nb.cells if c.cell_type == "markdown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = {p.stem: chapter_words(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    width = max(map(len, counts))
    print(f"{'chapter':<{width}}  words")
    for name, n in counts.items():
        print(f"{name:<{width}}  {n:>5}")
    if args.json:
        args.json.write_text(json.dumps(counts, indent=2) + "\n")


if __name__ == "__main__":
    main()
