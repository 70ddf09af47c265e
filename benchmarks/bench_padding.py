"""Padding saved by length-bucketed batches on real length distributions.

Tokenises the training split of each dataset with the MiniLM tokenizer (300 tokens at
most, the paper's limit) and counts the tokens one epoch computes with batches of 32:
padded to 300, padded to the longest of random batches, and padded to the longest of
length-bucketed batches.

    python benchmarks/bench_padding.py [--datasets disaster foldoc]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core.data.batching import padding_stats, tokenize  # noqa: E402
from abalone_core.data import load_dataset  # noqa: E402
from abalone_core.method.model import load_backbone  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="*", default=["disaster", "foldoc"])
    ap.add_argument("--max-length", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "padding.json"))
    args = ap.parse_args()
    _, tokenizer = load_backbone("minilm")
    rows = []
    for name in args.datasets:
        train = load_dataset(name).split("train")
        lengths = np.array([len(x) for x in tokenize(train.texts, tokenizer, args.max_length)])
        s = padding_stats(lengths, args.batch_size, bucket=True, seed=0)
        fixed = len(lengths) * args.max_length
        rows.append({"dataset": name, "documents": len(lengths), "median_tokens": float(np.median(lengths)),
                     "real_tokens": s["tokens"], "fixed_padding_tokens": fixed,
                     "random_batches_tokens": s["random_padded_tokens"], "bucketed_tokens": s["padded_tokens"],
                     "saved_vs_fixed": 1 - s["padded_tokens"] / fixed, "saved_vs_random": s["saved_vs_random"]})
    print(f"{'dataset':<10}{'docs':>7}{'median':>8}{'fixed':>12}{'random':>12}{'bucketed':>12}{'saved vs fixed':>16}"
          f"{'saved vs random':>17}")
    for r in rows:
        print(f"{r['dataset']:<10}{r['documents']:>7}{r['median_tokens']:>8.0f}{r['fixed_padding_tokens']:>12,}"
              f"{r['random_batches_tokens']:>12,}{r['bucketed_tokens']:>12,}{r['saved_vs_fixed']:>16.1%}"
              f"{r['saved_vs_random']:>17.1%}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/bench_padding.py", "max_length": args.max_length,
                                          "batch_size": args.batch_size, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
