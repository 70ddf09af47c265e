"""Two CPU processes (gloo) with batch b must behave like one process with batch 2b."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from abalone_core.method.model import ContrastiveModel
from helpers import tiny_encoder


def _tiny_model(variant="msc"):
    enc = tiny_encoder(vocab_size=40, layers=1, max_positions=32)  # no dropout, seed 0
    return ContrastiveModel(enc, num_labels=5, variant=variant, queue_size=16, momentum=0.5)


def _batches(steps=3, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        ids = torch.randint(5, 40, (size, 12), generator=g)
        mask = torch.ones_like(ids)
        y = (torch.rand(size, 5, generator=g) < 0.4).float()
        out.append((ids, mask, y))
    return out


def _train(model, net, batches, rank=0, world=1):
    """SGD steps; returns per-step losses and gradients of the last step."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = []
    for ids, mask, y in batches:
        b = len(ids) // world
        part = slice(rank * b, (rank + 1) * b)
        loss = net(ids[part], mask[part], y[part])
        opt.zero_grad()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
        model.momentum_update()
        losses.append(loss.item())
    return losses, grads


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.use_deterministic_algorithms(True)
    model = _tiny_model()
    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    losses, grads = _train(model, net, _batches(), rank, world)
    torch.save({"losses": losses, "grads": grads, "queue": model.queue.state_dict(),
                "params": model.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_processes_match_one_process_with_double_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.use_deterministic_algorithms(True)
    model = _tiny_model()
    losses, grads = _train(model, model, _batches())
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        torch.testing.assert_close(torch.tensor(got["losses"]), torch.tensor(losses), rtol=1e-5, atol=1e-6)
        assert got["grads"].keys() == grads.keys()
        for n in grads:
            torch.testing.assert_close(got["grads"][n], grads[n], rtol=1e-4, atol=1e-6, msg=n)
        # Same keys, same labels, same order in the queue (ranks gathered in rank order).
        assert int(got["queue"]["count"]) == int(model.queue.count) == 16
        assert torch.equal(got["queue"]["y"], model.queue.y)
        torch.testing.assert_close(got["queue"]["z"], model.queue.z, rtol=1e-4, atol=1e-5)
        for n, p in model.state_dict().items():
            torch.testing.assert_close(got["params"][n].float(), p.float(), rtol=1e-4, atol=1e-5, msg=n)


def test_torchrun_training_matches_single_process(tiny_config, tmp_path):
    """The trainer under torchrun (2 gloo processes, batch 8 each) follows the same
    trajectory as one process with batch 16: same losses, same final weights."""
    import json
    import subprocess
    import sys

    from abalone_core.training.runs import run

    common = dict(objective="msc", dropout=0.0, max_steps=3, eval_every=1, queue_size=24)
    single = tiny_config(batch_size=16, output_dir=str(tmp_path / "single"), **common)
    run(single, progress=False)

    multi = tiny_config(batch_size=8, output_dir=str(tmp_path / "multi"), **common)
    multi.save(tmp_path / "multi.yaml")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "abalone_core.cli", "train", "--config", str(tmp_path / "multi.yaml"), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]

    def history(d):
        return [json.loads(l) for l in (d / "history.jsonl").read_text().splitlines()]

    hs, hm = history(tmp_path / "single"), history(tmp_path / "multi")
    assert [h["step"] for h in hs] == [h["step"] for h in hm] == [1, 2, 3]
    for a, b in zip(hs, hm):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    ws = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)["model"]
    wm = torch.load(tmp_path / "multi" / "checkpoint.pt", weights_only=False)["model"]
    for k in ws:
        torch.testing.assert_close(wm[k].float(), ws[k].float(), rtol=1e-3, atol=1e-4, msg=k)
