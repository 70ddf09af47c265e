"""Linear evaluation under the book's protocol and under the released code's, on the same embeddings.

    python scripts/probe_protocols.py                          # frozen MiniLM on disaster and foldoc
    python scripts/probe_protocols.py --train-msc              # and a short L_MSC run per dataset
    python scripts/probe_protocols.py runs/aapd/msc runs/aapd/frozen   # embeddings of finished runs

Every protocol probes the very same train / validation / test embeddings with the same
probe seeds, so the differences between rows come from the protocol alone:

* ``book``: ``ProbeConfig()``: the paper's grid (lr {1, 0.1, 0.01} x weight decay
  {1, 0.1, 0.01, 1e-4, 1e-6}), 3 trained heads, per-label choice on validation F1,
  threshold 0.5.
* ``book+untrained``: the same with 2 untrained heads in the mean (``untrained_heads=2``).
* ``released``: the released code's protocol as far as ``ProbeConfig`` expresses it: its
  grid (lr {1, 0.1} x weight decay {1, 0.1, 0.01, 1e-4}, ``src/trainer/trainer.py``),
  3 trained + 2 untrained heads, per-label choice, threshold 0.5. Its linear learning-rate
  decay and Xavier initialisation of the trained heads are not reproduced.
* ``global``: the book's grid and heads with one setting for all labels, chosen on
  validation micro-F1 (``selection="global"``).

Writes ``table.md`` (mean +- standard deviation over probe seeds, and the paired
difference to the ``book`` row) and ``table.json`` (every seed's scores) to ``--out``.
Embeddings are built without training for the frozen encoder (``backbone`` as loaded,
projection head discarded); ``--train-msc`` trains a short L_MSC run per dataset under
``--runs-dir`` (reused when it exists) and probes the encoder of its last step. Built
embeddings are kept in ``RUNS_DIR/embeddings`` and reused while their configuration is the
same (``--no-cache`` rebuilds them).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core.training.config import Config  # noqa: E402
from abalone_core.data import SPLITS  # noqa: E402
from abalone_core.evaluation.evaluate import linear_evaluation  # noqa: E402
from abalone_core.evaluation.probe import ProbeConfig  # noqa: E402

RELEASED_GRID = dict(lrs=(1.0, 0.1), weight_decays=(1.0, 0.1, 0.01, 1e-4))
PROTOCOLS = {
    "book": {},
    "book+untrained": {"untrained_heads": 2},
    "released": {**RELEASED_GRID, "untrained_heads": 2},
    "global": {"selection": "global"},
}
DESCRIPTIONS = {
    "book": "paper grid 3x5, 3 trained heads, per-label choice",
    "book+untrained": "paper grid 3x5, 3 trained + 2 untrained heads, per-label choice",
    "released": "released grid 2x4, 3 trained + 2 untrained heads, per-label choice",
    "global": "paper grid 3x5, 3 trained heads, one setting for all labels (validation micro-F1)",
}
METRICS = (("validation", "micro_f1"), ("validation", "macro_f1"), ("test", "micro_f1"), ("test", "macro_f1"))


def encoder_embeddings(config: Config, state_path: Path | None = None) -> dict:
    """Train / validation / test representations of ``config``'s data (head discarded).

    The encoder is the pre-trained backbone, or the weights in ``state_path`` (an
    ``encoder_*.pt`` file of a contrastive run).
    """
    import torch

    from abalone_core.evaluation.evaluate import embed
    from abalone_core.training.devices import deterministic_mode, seed_everything
    from abalone_core.training.encoders import build_encoder
    from abalone_core.data.run_data import prepare_data

    seed_everything(config.seed)
    with deterministic_mode():
        encoder, tokenizer = build_encoder(config)
        if state_path is not None:
            encoder.load_state_dict(torch.load(state_path, map_location="cpu"))
        data = prepare_data(config, tokenizer)
        feats = {s: embed(encoder, data.ids[s], data.pad_token_id, batch_size=64, progress=False) for s in SPLITS}
    return {"features": feats, "labels": data.labels, "train_counts": data.train_counts,
            "n_documents": {s: len(data.ids[s]) for s in SPLITS}, "n_labels": int(data.labels["train"].shape[1])}


def cached(path: Path, key: str, make) -> dict:
    """``make()``'s embeddings, stored in ``path`` (npz) and reused while ``key`` is unchanged."""
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return {"features": {s: z[f"x_{s}"] for s in SPLITS}, "labels": {s: z[f"y_{s}"] for s in SPLITS},
                        "train_counts": z["train_counts"], "n_documents": {s: len(z[f"x_{s}"]) for s in SPLITS},
                        "n_labels": int(z["y_train"].shape[1])}
    emb = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=key, train_counts=emb["train_counts"],
             **{f"x_{s}": emb["features"][s] for s in SPLITS}, **{f"y_{s}": emb["labels"][s] for s in SPLITS})
    return emb


def scale_of(emb: dict) -> dict:
    """Median test-embedding norm and the logit spread of an untrained head on it.

    An untrained head has Xavier-uniform weights, uniform in +-sqrt(6 / (D + L)), so its logit
    on x has standard deviation |x| sqrt(2 / (D + L)); the further from 0, the further its
    sigmoid moves the mean probability away from what the trained heads say.
    """
    x = emb["features"]["test"]
    norm = float(np.median(np.linalg.norm(x, axis=1)))
    return {"dim": int(x.shape[1]), "median_norm": norm,
            "untrained_logit_std": norm * float(np.sqrt(2.0 / (x.shape[1] + emb["n_labels"])))}


def run_dir_embeddings(run_dir: Path) -> dict:
    """Representations of a finished run's data with its encoder (the selected candidate)."""
    from abalone_core import notebook as nb

    parts = {s: nb.run_embeddings(run_dir, split=s) for s in SPLITS}
    return {"features": {s: parts[s]["x"] for s in SPLITS}, "labels": {s: parts[s]["y"] for s in SPLITS},
            "train_counts": parts["train"]["train_counts"],
            "n_documents": {s: len(parts[s]["x"]) for s in SPLITS}, "n_labels": int(parts["train"]["y"].shape[1])}


def short_msc_run(base: Config, runs_dir: Path, steps: int) -> Path:
    """Train (or reuse) a short L_MSC run; returns its encoder after the last step."""
    from abalone_core.training.runs import run

    out = runs_dir / f"{base.dataset}-msc-{steps}"
    # The run's own linear evaluation is made cheap: this script probes its encoder itself.
    cfg = base.replace(objective="msc", max_steps=steps, lr_head=1e-3, output_dir=str(out),
                       probe={"epochs": 1, "heads": 1, "lrs": [0.1], "weight_decays": [1e-4]})
    if not (out / "metrics.json").exists():
        run(cfg, progress=False)
    return out / "encoder_last.pt"


def probe_all(emb: dict, seeds, log) -> list[dict]:
    rows = []
    for name, overrides in PROTOCOLS.items():
        for seed in seeds:
            t0 = time.perf_counter()
            probe = ProbeConfig(**overrides, seed=seed)
            r = linear_evaluation(emb["features"], emb["labels"], emb["train_counts"], probe, progress=False)
            row = {"protocol": name, "probe_seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
            row.update({f"{split}_{m}": float(r[split][m]) for split, m in METRICS})
            row["distinct_settings"] = len(set(zip(r["best_lr"], r["best_weight_decay"])))
            rows.append(row)
            log(f"    {name:15s} seed {seed}: test micro {row['test_micro_f1']:.2f} "
                f"macro {row['test_macro_f1']:.2f} ({row['seconds']} s)")
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (embeddings, protocol), and the paired
    difference to the ``book`` protocol on the same embeddings and probe seed."""
    out = []
    keys = [f"{split}_{m}" for split, m in METRICS]
    for source in dict.fromkeys(r["embeddings"] for r in rows):
        mine = [r for r in rows if r["embeddings"] == source]
        book = {r["probe_seed"]: r for r in mine if r["protocol"] == "book"}
        for name in PROTOCOLS:
            sel = [r for r in mine if r["protocol"] == name]
            if not sel:
                continue
            s = {"embeddings": source, "protocol": name, "seeds": len(sel)}
            for k in keys:
                v = np.array([r[k] for r in sel])
                s[k] = float(v.mean())
                s[k + "_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
                d = np.array([r[k] - book[r["probe_seed"]][k] for r in sel if r["probe_seed"] in book])
                s["delta_" + k] = float(d.mean()) if len(d) else float("nan")
                s["delta_" + k + "_std"] = float(d.std(ddof=1)) if len(d) > 1 else 0.0
            out.append(s)
    return out


def markdown(summary: list[dict], sources: dict, command: str) -> str:
    def pm(s, k):
        return f"{s[k]:.2f} ± {s[k + '_std']:.2f}"

    lines = [
        "# Linear evaluation: the book's protocol and the released code's, same embeddings",
        "",
        f"Command: `{command}`",
        "",
        "Scores in percent, mean ± standard deviation over probe seeds; Δ: paired difference to the "
        "`book` row (same embeddings, same probe seed), mean ± standard deviation.",
        "",
        "| embeddings | protocol | val micro-F1 | val macro-F1 | test micro-F1 | test macro-F1 "
        "| Δ test micro-F1 | Δ test macro-F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        delta = ("" if s["protocol"] == "book" else pm(s, "delta_test_micro_f1"),
                 "" if s["protocol"] == "book" else pm(s, "delta_test_macro_f1"))
        lines.append(f"| {s['embeddings']} | {s['protocol']} | {pm(s, 'validation_micro_f1')} | "
                     f"{pm(s, 'validation_macro_f1')} | {pm(s, 'test_micro_f1')} | {pm(s, 'test_macro_f1')} | "
                     f"{delta[0]} | {delta[1]} |")
    lines += ["", "Protocols:", ""]
    lines += [f"- `{k}`: {v}" for k, v in DESCRIPTIONS.items()]
    lines += ["", "Embeddings:", ""]
    for name, info in sources.items():
        n = info["n_documents"]
        lines.append(f"- `{name}`: {info['what']}; {info['n_labels']} labels; "
                     f"{n['train']} / {n['validation']} / {n['test']} documents (train / validation / test); "
                     f"median test-embedding norm {info['median_norm']:.2f} in {info['dim']} dimensions, so an "
                     f"untrained head's logit has standard deviation {info['untrained_logit_std']:.2f}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="*", type=Path, help="finished runs whose encoders to probe "
                    "(default: build embeddings with the frozen backbone)")
    ap.add_argument("--datasets", nargs="+", default=["disaster", "foldoc"])
    ap.add_argument("--subset", nargs=3, type=int, default=[3000, 800, 1500], metavar=("TRAIN", "VAL", "TEST"))
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="probe seeds")
    ap.add_argument("--train-msc", action="store_true", help="also probe a short L_MSC run per dataset")
    ap.add_argument("--msc-steps", type=int, default=60)
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "probe_protocols")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "probe_protocols")
    ap.add_argument("--no-cache", action="store_true", help="recompute embeddings (else reused from "
                    "RUNS_DIR/embeddings while their configuration is unchanged)")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, flush=True)

    sources = {}  # name -> (make embeddings, description, cache key or None)
    if args.run_dirs:
        for d in args.run_dirs:
            sources[d.name] = (lambda d=d: run_dir_embeddings(d), f"encoder of run `{d.name}`", None)
    else:
        subset = dict(zip(SPLITS, args.subset))
        for ds in args.datasets:
            base = Config(dataset=ds, subset=subset, max_length=args.max_length, backbone=args.backbone,
                          objective="frozen", device="cpu")
            key = json.dumps(base.to_dict(), sort_keys=True, default=list)
            sources[f"{ds}/frozen"] = (lambda base=base: encoder_embeddings(base),
                                       f"{args.backbone} pre-trained encoder, frozen, {args.max_length} tokens",
                                       key)
            if args.train_msc:
                def trained(base=base):
                    return encoder_embeddings(base, short_msc_run(base, args.runs_dir, args.msc_steps))
                sources[f"{ds}/msc-{args.msc_steps}"] = (
                    trained, f"{args.backbone} after {args.msc_steps} L_MSC steps (batch 32, lr_head 1e-3; "
                             f"encoder of the last step), {args.max_length} tokens", f"{key}|msc-{args.msc_steps}")

    rows, info = [], {}
    for name, (make, what, key) in sources.items():
        t0 = time.perf_counter()
        log(f"{name}: embeddings")
        if key is None or args.no_cache:
            emb = make()
        else:
            emb = cached(args.runs_dir / "embeddings" / (name.replace("/", "_") + ".npz"), key, make)
        log(f"  {emb['n_documents']} documents, {emb['n_labels']} labels ({time.perf_counter() - t0:.0f} s)")
        info[name] = {"what": what, "n_documents": emb["n_documents"], "n_labels": emb["n_labels"], **scale_of(emb)}
        for r in probe_all(emb, args.seeds, log):
            rows.append({"embeddings": name, **r})

    summary = summarise(rows)
    command = " ".join(["python scripts/probe_protocols.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(markdown(summary, info, command))
    record = {"command": command, "protocols": {k: {"overrides": v, "description": DESCRIPTIONS[k]}
                                                for k, v in PROTOCOLS.items()},
              "embeddings": info, "summary": summary, "per_seed": rows}
    (args.out / "table.json").write_text(json.dumps(record, indent=2, default=list) + "\n")
    log(f"wrote {args.out / 'table.md'} and {args.out / 'table.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
