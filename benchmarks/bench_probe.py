"""Wall time and memory of the full linear-probe grid on random embeddings.

Paper grid: 15 (lr, weight decay) settings x 3 heads x 40 epochs, here for
L = 100 labels on D = 384 features, 5,000 training and 1,000 validation
documents. Labels come from a random linear model so that the probe has
something to learn; the numbers measured are time and memory, not F1.

Usage: python benchmarks/bench_probe.py [--train 5000] [--val 1000] [--dim 384]
       [--labels 100] [--epochs 40] [--device cpu] [--threads N] [--precision fp32 bf16]
Each precision of ``--precision`` (``ProbeConfig.precision``) is measured in turn in the same
run, on the same data, so the columns compare. Writes benchmarks/results/probe.json. Timings on a shared machine depend on
its load, which the record keeps (1-minute load average before the run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from abalone_core.evaluation.metrics import multilabel_scores
from abalone_core.evaluation.probe import ProbeConfig, linear_probe


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="probe precisions measured side by side (default fp32)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "probe.json")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.train + args.val
    x = rng.normal(size=(n, args.dim)).astype(np.float32)
    score = x @ rng.normal(size=(args.dim, args.labels)) + rng.normal(scale=4.0, size=(n, args.labels))
    rates = np.geomspace(0.2, 0.005, args.labels)  # long-tailed label frequencies
    y = (score > np.quantile(score, 1 - rates, axis=0).diagonal()).astype(np.int8)
    tx, ty, vx, vy = x[:args.train], y[:args.train], x[args.train:], y[args.train:]

    records = []
    for precision in args.precision:
        config = ProbeConfig(epochs=args.epochs, device=args.device, precision=precision)
        load_before = os.getloadavg()[0]
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        result = linear_probe(tx, ty, vx, vy, config, progress=True)
        wall = time.perf_counter() - start
        scores = multilabel_scores(vy, result.predict(vx))
        records.append({
            "precision": precision,
            "train_docs": args.train,
            "val_docs": args.val,
            "dim": args.dim,
            "labels": args.labels,
            "settings": len(config.settings),
            "heads": config.heads,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "regressions": len(config.settings) * config.heads * args.labels,
            "wall_s": round(wall, 2),
            "s_per_epoch": round(wall / config.epochs, 3),
            "peak_rss_mib_before": round(rss_before, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "val_micro_f1": round(scores["micro_f1"], 2),
            "val_macro_f1": round(scores["macro_f1"], 2),
            "device": args.device,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_avg_1min_before": round(load_before, 2),
        })
    rows = [
        ("regressions (settings x heads x labels)", lambda r: f"{r['regressions']:,}"),
        ("wall time (s), incl. selection", lambda r: f"{r['wall_s']:.2f}"),
        ("seconds per epoch", lambda r: f"{r['s_per_epoch']:.3f}"),
        ("peak RSS (MiB), before / after", lambda r: f"{r['peak_rss_mib_before']:.0f} / {r['peak_rss_mib']:.0f}"),
        ("val micro-F1 / macro-F1 (%)", lambda r: f"{r['val_micro_f1']:.1f} / {r['val_macro_f1']:.1f}"),
        ("torch threads / device", lambda r: f"{r['torch_threads']} / {r['device']}"),
        ("machine load (1 min) before / CPUs", lambda r: f"{r['load_avg_1min_before']:.2f} / {r['cpu_count']}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\nlinear probe: {args.train} train, {args.val} val, D={args.dim}, L={args.labels}, {args.epochs} epochs")
    print(f"  {'':<{width}}  " + "  ".join(f"{r['precision']:>14}" for r in records))
    for key, cell in rows:
        print(f"  {key:<{width}}  " + "  ".join(f"{cell(r):>14}" for r in records))
    if len(records) > 1:
        base = records[0]["wall_s"]
        print("  speed-up over " + records[0]["precision"] + ": "
              + ", ".join(f"{r['precision']} {base / r['wall_s']:.2f}x" for r in records[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records if len(records) > 1 else records[0], indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
