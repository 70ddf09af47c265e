"""Write the comparison's answer (abalone_core.report.findings.report over the committed grids) into the
README, between its ``findings`` markers, so the README says what chapter 8 says.

    python scripts/write_findings.py            # rewrite the README's block
    python scripts/write_findings.py --check    # exit 1 when the README's block is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core.report import findings  # noqa: E402

START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def block(results=ROOT / "results") -> str:
    return findings.report(findings.grid_records(results))


def replace_block(text: str, new: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{new}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_block(text, block())
    if args.check:
        if new != text:
            print("README.md's findings are out of date: run python scripts/write_findings.py")
            return 1
        return 0
    readme.write_text(new)
    print(f"wrote the findings block of {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
