"""Forward+backward time and peak memory of msc_loss against the loop and dense formulations.

Each case runs in a fresh subprocess so that its peak resident memory (ru_maxrss,
minus the process's resident memory just before the case) is its own.

    python benchmarks/bench_losses.py [--repeats 5] [--out benchmarks/results/losses.json]

Sizes: (B=32, K=512, L=54), AAPD scale, and (B=256, K=4096, L=4271), EUR-Lex scale;
projection dim 256, temperature 0.1, beta 0.1; labels drawn from a long-tailed
(Zipf) label distribution with about 2.4 (AAPD) or 5 (EUR-Lex) labels per document.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [
    {"name": "AAPD scale", "B": 32, "K": 512, "L": 54, "labels_per_doc": 2.4},
    {"name": "EUR-Lex scale", "B": 256, "K": 4096, "L": 4271, "labels_per_doc": 5.0},
]
DIM = 256
# Above this many float32 elements (4 GiB) the dense B x |H| x L tensor is not built.
DENSE_LIMIT = 2**30


def make_inputs(B, K, L, labels_per_doc, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    freq = 1.0 / torch.arange(1, L + 1, dtype=torch.float64)  # Zipf label frequencies
    freq = freq / freq.sum()

    def labels(n):
        k = (torch.poisson(torch.full((n,), labels_per_doc - 1), generator=g) + 1).clamp(max=L).long()
        y = torch.zeros(n, L)
        for i in range(n):
            y[i, torch.multinomial(freq, int(k[i]), replacement=False, generator=g)] = 1
        return y

    z = torch.randn(B, DIM, generator=g, requires_grad=True)
    protos = torch.randn(L, DIM, generator=g, requires_grad=True)
    return z, labels(B), protos, torch.randn(K, DIM, generator=g), labels(K)


def run_case(impl: str, size: dict, repeats: int, threads: int | None = None) -> dict:
    """Runs inside the subprocess: time forward+backward, report peak RSS growth."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from reference import dense_msc_loss, loop_loss

    from abalone_core.method.losses import msc_loss

    if threads:
        torch.set_num_threads(threads)
    z, y, P, qz, qy = make_inputs(size["B"], size["K"], size["L"], size["labels_per_doc"])
    fn = {
        "vectorised": lambda: msc_loss(z, y, P, 0.1, 0.1, qz, qy),
        "dense": lambda: dense_msc_loss(z, y, P, 0.1, 0.1, qz, qy),
        "loop": lambda: loop_loss(z, y, 0.1, "msc", 0.1, P, qz, qy),
    }[impl]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        z.grad = P.grad = None
        t0 = time.perf_counter()
        fn().backward()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss
    return {"seconds": min(times), "seconds_all": times, "peak_mb": peak / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop-repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "losses.json"))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        impl, idx = args.case.split(":")
        reps = args.loop_repeats if impl == "loop" else args.repeats
        print(json.dumps(run_case(impl, SIZES[int(idx)], reps, args.threads)))
        return

    load_before = os.getloadavg()
    rows = []
    for idx, size in enumerate(SIZES):
        M = size["B"] + size["K"]
        dense_elems = size["B"] * M * size["L"]
        for impl in ("vectorised", "dense", "loop"):
            row = {**size, "impl": impl, "dense_tensor_gib": dense_elems * 4 / 2**30}
            if impl == "dense" and dense_elems > DENSE_LIMIT:
                row["skipped"] = f"B x |H| x L = {dense_elems:.3g} float32 = {dense_elems * 4 / 2**30:.1f} GiB per tensor"
            elif impl == "loop" and idx > 0:
                row["skipped"] = "loop reference: hours at this size"
            else:
                out = subprocess.run(
                    [sys.executable, __file__, "--case", f"{impl}:{idx}", "--repeats", str(args.repeats),
                     "--loop-repeats", str(args.loop_repeats)] + (["--threads", str(args.threads)] if args.threads else []),
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )
                row.update(json.loads(out.stdout.strip().splitlines()[-1]))
            rows.append(row)

    import torch

    header = f"{'size':<14} {'impl':<11} {'fwd+bwd s':>10} {'peak MB':>9} {'speed-up':>9}  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        vec = next(r for r in rows if r["name"] == row["name"] and r["impl"] == "vectorised")
        if "seconds" in row:
            speed = row["seconds"] / vec["seconds"]
            print(f"{row['name']:<14} {row['impl']:<11} {row['seconds']:>10.4f} {row['peak_mb']:>9.1f} {speed:>8.1f}x")
        else:
            print(f"{row['name']:<14} {row['impl']:<11} {'-':>10} {'-':>9} {'-':>9}  {row['skipped']}")
    result = {
        "benchmark": "msc_loss forward+backward",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": args.threads or torch.get_num_threads(),
                    "load_average_before": load_before},
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
