"""Run a grid file's cells with abalone_core.training.runs directly, for a GPU machine without papermill.

The cells, their order, run ids and configurations are those of ``abalone sweep GRID.yaml``
(the same grid file, the same ``abalone_core.report.rows.row_config``); the results are written in
the export format of :func:`abalone_core.sweep.export` (``runs.jsonl``, ``table.md``), so
chapter 8 and :mod:`abalone_core.report.claims` read them like any sweep.

    python scripts/gpu_grid.py sweeps/gpu_grid.yaml --out results/gpu_grid --deadline 480

``--deadline`` (seconds) stops before starting a cell that the time left cannot fit (judged
from the slowest finished cell); the cells come in the grid file's order, most important first.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core import sweep as sw  # noqa: E402
from abalone_core.sweep.grid import expand  # noqa: E402
from abalone_core.report.rows import row_config, row_loss  # noqa: E402


def cells(spec: dict) -> list[dict]:
    return expand(spec["grid"], spec.get("exclude"))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_cell(params: dict, run_dir: Path, init_from: str | None) -> dict:
    from abalone_core.training.runs import run

    p = dict(params)
    clustering = p.pop("clustering", False)
    row = p.pop("objective")
    config = row_config(row, init_from=init_from, finetune_loss=p.pop("finetune_loss", "bce"),
                        overrides=p.pop("overrides", {}), supervised_overrides=p.pop("supervised_overrides", {}),
                        output_dir=str(run_dir), **p)
    metrics = run(config, progress=False)
    if clustering and config.spec.encoder:
        from abalone_core.analysis import clustering_scores
        from abalone_core.notebook import run_embeddings

        emb = run_embeddings(run_dir, "test")
        try:
            s = clustering_scores(emb["x"], emb["y"], shares=(0.5,), sample_size=10_000, seed=config.seed).iloc[0]
            metrics.update(silhouette=float(s["silhouette"]), davies_bouldin=float(s["davies_bouldin"]))
        except ValueError as err:
            metrics["clustering_error"] = str(err)
    return {**metrics, "objective": row, "loss": row_loss(row, config.objective)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--out", required=True, help="folder of runs.jsonl and table.md")
    ap.add_argument("--work", default="runs/gpu_grid", help="run folders")
    ap.add_argument("--deadline", type=float, default=None, help="seconds for the whole grid")
    ap.add_argument("--set", nargs="*", default=[], help="parameter=value (YAML) for every cell, e.g. backbone=PATH")
    ap.add_argument("--previous", help="a runs.jsonl of an earlier call: its finished cells are kept, not rerun")
    args = ap.parse_args()
    t0 = time.time()
    spec = yaml.safe_load(Path(args.grid).read_text())
    fixed = {**spec.get("parameters", {})}
    for pair in args.set:
        key, value = pair.split("=", 1)
        fixed[key] = yaml.safe_load(value)
    deps = spec.get("depends_on", {}).get("init_from", {}).get("objective", {})
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    lines, slowest = [], 0.0
    if args.previous:
        lines = [l for l in Path(args.previous).read_text().splitlines() if l.strip()
                 and json.loads(l)["status"] == "done"]
    finished = {json.loads(l)["run_id"] for l in lines}
    versions, hardware = sw.versions(), sw.hardware("cuda:0")
    revision, dirty = sw.git_state(ROOT)
    for cell in cells(spec):
        rid = sw.run_id(cell)
        if rid in finished:
            continue
        left = None if args.deadline is None else args.deadline - (time.time() - t0)
        if left is not None and left < 1.2 * slowest:
            print(f"skipped {rid}: {left:.0f} s left, the slowest cell took {slowest:.0f} s", flush=True)
            continue
        init_from = None
        if cell["objective"] in deps:
            target = sw.run_id({**cell, "objective": deps[cell["objective"]]})
            init_from = str(work / target)
            if not (work / target / "metrics.json").exists():
                print(f"skipped {rid}: needs {target}, not finished", flush=True)
                continue
        params = {**fixed, **cell}
        started, t = now(), time.time()
        try:
            metrics, status, error = run_cell(params, work / rid, init_from), "done", None
        except Exception:
            metrics, status, error = None, "failed", traceback.format_exc()
        duration = time.time() - t
        slowest = max(slowest, duration)
        print(f"{status} {rid} in {duration:.0f} s" + (f": {error.splitlines()[-1]}" if error else ""), flush=True)
        if metrics is not None:
            metrics = json.loads(json.dumps(metrics, default=str).replace(str(work.resolve()) + "/", ""))
        lines.append(json.dumps({"run_id": rid, "status": status, "parameters": params, "metrics": metrics,
                                 "error": error, "started": started, "finished": now(), "duration_s": duration,
                                 "device": "cuda:0", "hardware": hardware, "versions": versions,
                                 "git_revision": revision, "git_dirty": dirty, "attempts": 1}, sort_keys=True))
        (out / "runs.jsonl").write_text("\n".join(lines) + "\n")
    done = [json.loads(l) for l in lines if json.loads(l)["status"] == "done"]
    if done:
        table = sw.aggregate(out / "runs.jsonl", **spec.get("table", {}))
        sw.write_table(table, out / "table")
        print(table.to_markdown())
    print(f"{len(done)} of {len(cells(spec))} cells done in {time.time() - t0:.0f} s")
    return 0 if len(done) == len(cells(spec)) else 1


if __name__ == "__main__":
    sys.exit(main())
