"""Cost of one ABALONE (L_MSC) pre-training step against one BCE fine-tuning step.

The two steps run side by side, interleaved, on the same backbone, batch and token
lengths, so machine load affects both alike (with several ``--train-layers`` settings, every
setting's two steps in turn, round after round):

* L_MSC step: query forward + backward, key-encoder forward (no grad), loss on the
  queue, gradient clipping, AdamW step, momentum update, enqueue;
* BCE step: forward + backward of encoder + linear classifier, clipping, AdamW step.

With ``--train-layers 1 2 3`` the same two steps also run with only the top k
transformer layers trained, on the cached output of the frozen bottom (``Config.train_layers``,
:mod:`abalone_core.training.layer_cache`): the table gives each k's step times, its speed-up over
full fine-tuning and the L_MSC / BCE ratio.

Then, on the same machine: how the L_MSC loss + queue part grows with the queue size K
and the label count L, and, on a GPU, documents per second and peak memory of L_MSC
pre-training with the roberta-base architecture (random weights, no download).

    python benchmarks/bench_step.py                       # CPU: MiniLM, batch 32, 64 tokens, k = full, 1, 2, 3
    python benchmarks/bench_step.py --gpu-throughput      # GPU: roberta-base, 300 tokens, batch 32

With ``--precision float32 bf16`` every setting runs in both precisions, side by side in one
run (bfloat16 autocast, the losses in float32 as in training), and the table adds the
bfloat16 speed-up of each setting:

    python benchmarks/bench_step.py --threads 1 --train-layers full 1 --precision float32 bf16 \
        --no-scaling --out benchmarks/results/step_precision.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from abalone_core.method.losses import bce_loss, msc_loss  # noqa: E402
from abalone_core.method.memory import LabelQueue  # noqa: E402
from abalone_core.method.model import ContrastiveModel, TextClassifier, TextEncoder, load_backbone  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batch(B, T, L, vocab, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab - 1, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    y = (torch.rand(B, L, generator=g) < 2.4 / L).float()
    y[torch.arange(B), torch.randint(0, L, (B,), generator=g)] = 1  # every document has a label
    return ids.to(device), mask.to(device), y.to(device)


def build(backbone, random_init, L, K, device, dtype_ctx, train_layers=None):
    torch.manual_seed(0)
    bb, _ = load_backbone(backbone, random_init=random_init)
    cm = ContrastiveModel(TextEncoder(bb, dim=256, train_layers=train_layers), L, "msc", queue_size=K).to(device)
    bb2, _ = load_backbone(backbone, random_init=random_init)
    clf = TextClassifier(TextEncoder(bb2, dim=256, train_layers=train_layers), L).to(device)
    fused = device.type == "cuda"
    opt_c = torch.optim.AdamW([p for p in cm.parameters() if p.requires_grad], lr=5e-5, fused=fused)
    opt_b = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=5e-5, fused=fused)
    return cm, clf, opt_c, opt_b


def msc_step(cm, opt, batch, ctx):
    ids, mask, y = batch
    with ctx():
        loss = cm(ids, mask, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(cm.parameters(), 1.0)
    opt.step()
    cm.momentum_update()


def bce_step(clf, opt, batch, ctx):
    ids, mask, y = batch
    with ctx():
        loss = bce_loss(clf(ids, mask), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(clf.parameters(), 1.0)
    opt.step()


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


class Setting:
    """The two models of one train_layers setting and precision, their optimisers and their batch."""

    def __init__(self, args, device, ctx, train_layers=None):
        self.train_layers = train_layers
        self.ctx = ctx
        self.cm, self.clf, self.opt_c, self.opt_b = build(args.backbone, args.random_init, args.labels, args.queue,
                                                          device, ctx, train_layers)
        self.cm.train(), self.clf.train()
        vocab = self.cm.encoder.backbone.config.vocab_size
        self.batch = make_batch(args.batch, args.tokens, args.labels, vocab, device)
        if train_layers is not None:  # the trainer feeds the cached float16 states, padded as float32
            ids, mask, y = self.batch
            self.batch = (self.cm.encoder.frozen_states(ids, mask).half().float(), mask, y)
        self.t_msc, self.t_bce = [], []

    def steps(self, ctx, device, record=True):
        ctx = self.ctx or ctx
        m = timed(lambda: msc_step(self.cm, self.opt_c, self.batch, ctx), device)
        b = timed(lambda: bce_step(self.clf, self.opt_b, self.batch, ctx), device)
        if record:
            self.t_msc.append(m)
            self.t_bce.append(b)

    def summary(self, args, device) -> dict:
        ids, mask, y = self.batch
        with torch.no_grad(), self.ctx():  # the key forward in the setting's precision, as in training
            t_key = statistics.median(timed(lambda: self.cm.key_encoder(ids, mask), device)
                                      for _ in range(args.repeats))
        t_mom = statistics.median(timed(self.cm.momentum_update, device) for _ in range(args.repeats))
        m, b = statistics.median(self.t_msc), statistics.median(self.t_bce)
        return {"msc_step_s": m, "bce_step_s": b, "ratio": m / b, "key_forward_s": t_key, "momentum_update_s": t_mom,
                "msc_all_s": self.t_msc, "bce_all_s": self.t_bce}


def precision_context(name: str, device):
    """Autocast context factory of a ``--precision`` value (``float32`` or ``bf16``)."""
    if name == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return lambda: torch.autocast(device.type, enabled=False)


def overheads(args, device, ctx, settings, precisions=(None,)) -> dict:
    """Median step times of every setting (and precision), measured round-robin (an L_MSC and
    a BCE step of each setting in turn, ``repeats`` rounds), so that changes of machine load
    hit all alike. Keys: the setting, or ``setting/precision`` when precisions are given."""
    built = {}
    for k in settings:
        for prec in precisions:
            key = k if prec is None else f"{k}/{prec}"
            try:
                built[key] = Setting(args, device, precision_context(prec, device) if prec else ctx,
                                     None if k == "full" else int(k))
            except Exception as err:  # report and go on with the other settings
                print(f"train_layers={key}: {type(err).__name__}: {err}")
    for _ in range(args.warmup):
        for s in built.values():
            s.steps(ctx, device, record=False)
    for _ in range(args.repeats):
        for s in built.values():
            s.steps(ctx, device)
    return {k: s.summary(args, device) for k, s in built.items()}


def loss_scaling(args, device):
    """L_MSC loss forward+backward with a full queue of K keys and L labels (B = batch)."""
    rows = []
    for K in args.scaling_queue:
        for L in args.scaling_labels:
            g = torch.Generator().manual_seed(0)
            z = torch.randn(args.batch, 256, generator=g).to(device).requires_grad_(True)
            P = torch.randn(L, 256, generator=g).to(device).requires_grad_(True)
            y = (torch.rand(args.batch, L, generator=g) < 3.0 / L).float().to(device)
            q = LabelQueue(K, 256, L).to(device)
            q.enqueue(torch.randn(K, 256, generator=g).to(device),
                      (torch.rand(K, L, generator=g) < 3.0 / L).to(device))

            def step():
                qz, qy = q.keys()
                msc_loss(z, y, P, 0.1, 0.1, qz, qy).backward()

            step()
            t = statistics.median(timed(step, device) for _ in range(3))
            rows.append({"K": K, "L": L, "loss_fwd_bwd_s": t})
            print(f"  K={K:>6} L={L:>5}  loss+queue fwd+bwd {t * 1e3:8.2f} ms", flush=True)
    return rows


def gpu_throughput(args, device):
    """Documents/s of L_MSC pre-training, roberta-base architecture, bf16 autocast."""
    torch.backends.cuda.matmul.allow_tf32 = True
    ctx = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    if args.gpu_backbone == "roberta-base":  # its architecture, random weights: no download
        from transformers import RobertaConfig, RobertaModel

        bb = RobertaModel(RobertaConfig(max_position_embeddings=514, type_vocab_size=1))
    else:
        bb, _ = load_backbone(args.gpu_backbone, random_init=True)
    cm = ContrastiveModel(TextEncoder(bb, dim=256), args.labels, "msc", queue_size=args.queue).to(device)
    if args.compile:
        cm.encoder = torch.compile(cm.encoder, dynamic=True)
    opt = torch.optim.AdamW([p for p in cm.parameters() if p.requires_grad], lr=5e-5, fused=True)
    batch = make_batch(32, args.gpu_tokens, args.labels, bb.config.vocab_size, device)
    for _ in range(10):
        msc_step(cm, opt, batch, ctx)
    torch.cuda.reset_peak_memory_stats()
    n = 50
    t = timed(lambda: [msc_step(cm, opt, batch, ctx) for _ in range(n)], device)
    return {"docs_per_s": 32 * n / t, "step_s": t / n, "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
            "tokens": args.gpu_tokens, "compile": args.compile, "gpu": torch.cuda.get_device_name()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="minilm")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--labels", type=int, default=54)
    ap.add_argument("--queue", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--scaling-queue", type=int, nargs="*", default=[512, 4096, 16384, 65536])
    ap.add_argument("--scaling-labels", type=int, nargs="*", default=[54, 4271])
    ap.add_argument("--train-layers", nargs="*", default=["full", "1", "2", "3"],
                    help="'full' and/or numbers of trained top layers")
    ap.add_argument("--no-scaling", action="store_true", help="skip the loss + queue scaling table")
    ap.add_argument("--precision", nargs="*", choices=["float32", "bf16"], default=None,
                    help="run each setting in these precisions side by side (default: float32 on CPU, bf16 on GPU)")
    ap.add_argument("--gpu-throughput", action="store_true")
    ap.add_argument("--gpu-backbone", default="roberta-base")
    ap.add_argument("--gpu-tokens", type=int, default=300)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "step_overhead.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))

    result = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                          "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                          "threads": torch.get_num_threads()},
              "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    print(f"device {result['machine']['device']}, {args.backbone}, batch {args.batch}, {args.tokens} tokens, "
          f"L={args.labels}, K={args.queue}")
    if args.precision:
        return by_precision(args, device, ctx, result)
    rows = []
    for k, o in overheads(args, device, ctx, args.train_layers).items():
        o["train_layers"] = k
        rows.append(o)
        if k == "full":
            result["overhead"] = o
    full = next((r for r in rows if r["train_layers"] == "full"), None)
    for r in rows:
        r["speedup_msc"] = full["msc_step_s"] / r["msc_step_s"] if full else None
        r["speedup_bce"] = full["bce_step_s"] / r["bce_step_s"] if full else None
    result["partial"] = rows
    print(f"{'trained layers':<16}{'L_MSC s':>10}{'BCE s':>10}{'ratio':>8}{'speed-up L_MSC':>16}{'speed-up BCE':>14}"
          f"{'key fwd s':>11}{'momentum s':>12}")
    for r in rows:
        su = (f"{r['speedup_msc']:>15.2f}x{r['speedup_bce']:>13.2f}x" if full else f"{'':>16}{'':>14}")
        print(f"{str(r['train_layers']):<16}{r['msc_step_s']:>10.4f}{r['bce_step_s']:>10.4f}{r['ratio']:>8.3f}{su}"
              f"{r['key_forward_s']:>11.4f}{r['momentum_update_s']:>12.4f}")
    print("targets: speed-up >= 2.5x at k = 2; ratio L_MSC / BCE <= 1.45")
    if not args.no_scaling:
        print("loss + queue scaling:")
        result["scaling"] = loss_scaling(args, device)
    if args.gpu_throughput:
        if device.type != "cuda":
            result["gpu"] = "no GPU on this machine"
            print("GPU throughput: no GPU on this machine")
        else:
            result["gpu"] = gpu_throughput(args, device)
            print(f"GPU throughput: {result['gpu']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def by_precision(args, device, ctx, result) -> None:
    """The float32 / bfloat16 table: each setting's L_MSC and BCE step in each precision."""
    measured = overheads(args, device, ctx, args.train_layers, tuple(args.precision))
    rows = []
    for key, o in measured.items():
        k, prec = key.split("/")
        rows.append({"train_layers": k, "precision": prec, **o})
    for r in rows:
        ref = measured.get(f"{r['train_layers']}/float32")
        r["bf16_speedup_msc"] = ref["msc_step_s"] / r["msc_step_s"] if ref else None
        r["bf16_speedup_bce"] = ref["bce_step_s"] / r["bce_step_s"] if ref else None
    result["precision"] = rows
    paths = _cpu_bf16_paths() if device.type == "cpu" else []
    result["machine"]["cpu_bf16"] = bool(paths)
    if device.type == "cpu":
        result["machine"]["cpu_model"] = _cpu_model()
        result["machine"]["cpu_bf16_paths"] = paths
    if device.type == "cpu" and "bf16" in args.precision and not paths:
        print("note: this CPU has neither AMX nor AVX512-BF16, so bfloat16 is emulated here and much slower than "
              "float32; mixed_precision auto trains in float32 on it")
    if hasattr(os, "getloadavg"):  # other work on the machine slows both precisions alike (round-robin)
        result["machine"]["load_average_1min_after"] = os.getloadavg()[0]
    if device.type == "cpu":
        print(f"CPU {result['machine']['cpu_model']}; native bfloat16: {', '.join(paths) or 'none (emulated)'}")
    print(precision_markdown(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def precision_markdown(rows: list[dict]) -> str:
    """The float32 / bfloat16 table of ``rows`` (``result["precision"]``) as the README shows it."""
    lines = ["| trained layers | precision | L_MSC step (s) | BCE step (s) | bfloat16 speed-up L_MSC | BCE |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        k = "whole encoder" if r["train_layers"] == "full" else f"top {r['train_layers']}"
        su = (f"{r['bf16_speedup_msc']:.2f}x | {r['bf16_speedup_bce']:.2f}x" if r["bf16_speedup_msc"] else " | ")
        lines.append(f"| {k} | {r['precision']} | {r['msc_step_s']:.2f} | {r['bce_step_s']:.2f} | {su} |")
    return "\n".join(lines)


def _cpu_model() -> str | None:
    """The CPU's model name as Linux reports it (None elsewhere); for the reader, never used to decide."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _cpu_bf16_paths() -> list[str]:
    from abalone_core.training.devices import cpu_bf16_paths

    return cpu_bf16_paths()


if __name__ == "__main__":
    main()
