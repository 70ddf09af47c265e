"""Ship the trained part of converged one-layer runs of a grid with the book: their top
transformer layer, pooling and projection head in float16 (a few MB each), with provenance,
under ``<export>/encoders/``. Chapter 7 draws its maps from them
(abalone_core.training.encoders.load_exported).

    python scripts/export_encoders.py sweeps/encoder_depth.yaml \
        --where dataset=disaster seed=0 train_layers=1 --objectives base msc bce

The runs are read from the grid's output folder (``<output_dir>/runs/<run id>``, or
``--output-dir`` when the grid ran from another clone); each must be
finished and converged, and its row in the export's runs.jsonl (git revision, finish time,
hardware) is copied into the provenance.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core.training.encoders import export_trained  # noqa: E402
from abalone_core.sweep.grid import Sweep, run_id  # noqa: E402

KEEP = ("run_id", "git_revision", "git_dirty", "finished", "duration_s", "hardware", "versions")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", help="grid file (YAML) with output_dir and export")
    ap.add_argument("--where", nargs="+", default=[], metavar="KEY=VALUE",
                    help="the cell's other parameters, e.g. dataset=disaster seed=0 train_layers=1")
    ap.add_argument("--objectives", nargs="+", required=True)
    ap.add_argument("--output-dir", type=Path,
                    help="the grid's output folder when it ran elsewhere (another clone); default: the grid file's")
    args = ap.parse_args(argv)
    sweep = Sweep.from_file(args.grid)
    if args.output_dir is not None:
        sweep.output_dir = args.output_dir.resolve()
    if sweep.export is None:
        print(f"error: {args.grid} has no export: folder to ship the encoders in", file=sys.stderr)
        return 2
    cell = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --where {item!r}: write KEY=VALUE", file=sys.stderr)
            return 2
        cell[key] = int(value) if value.lstrip("-").isdigit() else value
    rows = {}
    runs_file = sweep.export / "runs.jsonl"
    if runs_file.is_file():
        for line in runs_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["run_id"]] = {k: row.get(k) for k in KEEP}
    failed = 0
    for objective in args.objectives:
        rid = run_id({**cell, "objective": objective})
        folder = sweep.output_dir / "runs" / rid
        metrics = folder / "metrics.json"
        if not metrics.is_file():
            print(f"{rid}: not finished ({metrics} missing); run the grid first", file=sys.stderr)
            failed += 1
            continue
        if json.loads(metrics.read_text()).get("converged") is not True:
            print(f"{rid}: did not converge; only converged runs are shipped", file=sys.stderr)
            failed += 1
            continue
        meta = export_trained(folder, sweep.export / "encoders" / f"{rid}.pt", record=rows.get(rid))
        size = (sweep.export / "encoders" / f"{rid}.pt").stat().st_size / 2**20
        print(f"{rid}: {meta['parameters']:,} parameters, {size:.1f} MB, step {meta['steps']}, "
              f"{meta['selected_candidate']}")
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
