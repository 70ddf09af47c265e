"""Command line: ``abalone train | evaluate | embed | stats | sweep``.

    abalone train --config run.yaml --set objective=msc --set max_steps=500
    abalone train --set dataset=disaster --set "subset={train: 2000}" --output runs/msc
    abalone evaluate runs/msc            # scores of a finished run (metrics.json)
    abalone embed runs/msc --split test --out test.npy
    abalone stats disaster               # long-tail statistics of a dataset
    abalone sweep sweeps/paper_grid.yaml --dry-run   # a papermill grid of runs
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import Config, parse_overrides
from .sweep import add_parser as add_sweep_parser


def _config(args) -> Config:
    base = Config.from_file(args.config).to_dict() if args.config else {}
    base.update(parse_overrides(args.set or []))
    if getattr(args, "output", None):
        base["output_dir"] = args.output
    return Config.from_dict(base)


def _summary(metrics: dict) -> str:
    t = metrics["test"]
    return (f"{metrics['objective']:<11} test micro-F1 {t['micro_f1']:.2f}  macro-F1 {t['macro_f1']:.2f}  "
            f"Hamming x1e3 {t['hamming']:.2f}  (head/medium/tail F1 {t['f1_head']:.1f}/{t['f1_medium']:.1f}/"
            f"{t['f1_tail']:.1f})")


def cmd_train(args) -> int:
    from .train import Interrupted, run

    cfg = _config(args)
    print(f"output: {cfg.output_dir}", file=sys.stderr)
    try:
        metrics = run(cfg, resume=not args.restart, progress=not args.quiet)
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    if metrics:  # empty on every process but the first under torchrun
        print(_summary(metrics))
    return 0


def cmd_evaluate(args) -> int:
    path = Path(args.run) / "metrics.json"
    if not path.exists():
        print(f"{path} does not exist: run `abalone train` with output_dir={args.run} first", file=sys.stderr)
        return 1
    metrics = json.loads(path.read_text())
    print(_summary(metrics))
    if args.json:
        print(json.dumps({k: metrics[k] for k in ("validation", "test")}, indent=2))
    return 0


def cmd_embed(args) -> int:
    import numpy as np

    from .evaluate import embed
    from .train import load_run_encoder, prepare_data, resolve_device

    encoder, tokenizer, cfg = load_run_encoder(args.run)
    data = prepare_data(cfg, tokenizer)
    device = resolve_device(cfg.device)
    x = embed(encoder.to(device), data.ids[args.split], data.pad_token_id, device=device)
    np.save(args.out, x)
    np.save(Path(args.out).with_suffix(".labels.npy"), data.labels[args.split])
    print(f"wrote {args.out} {x.shape} and its labels")
    return 0


def cmd_stats(args) -> int:
    from .data import load_dataset

    kwargs = parse_overrides(args.set or [])
    ds = load_dataset(args.dataset, **kwargs)
    stats = ds.stats()
    print(stats["splits"].to_string())
    labels = stats["labels"]
    print(labels.groupby("group").size().to_string() if "group" in labels else "")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="abalone", description="ABALONE training and evaluation")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) and evaluate one configuration")
    t.add_argument("--config", help="YAML or JSON configuration file")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (YAML value)")
    t.add_argument("--output", help="run directory (output_dir)")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="print the scores of a finished run")
    e.add_argument("run")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)

    m = sub.add_parser("embed", help="save document representations (head discarded) of a run")
    m.add_argument("run")
    m.add_argument("--split", default="test", choices=("train", "validation", "test"))
    m.add_argument("--out", required=True)
    m.set_defaults(fn=cmd_embed)

    s = sub.add_parser("stats", help="long-tail statistics of a dataset")
    s.add_argument("dataset")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="loader keyword argument")
    s.set_defaults(fn=cmd_stats)

    add_sweep_parser(sub)

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
