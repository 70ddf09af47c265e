"""How long a chapter's runs take on the reader's device: optimiser steps timed on that device
(:func:`step_seconds`), the steps a run plans (:func:`planned_steps`) and the minutes they add
up to (:func:`time_estimate`); :func:`device_timing` says it in Markdown for a chapter
(``nb.device_timing`` in chapter 4).
"""
from __future__ import annotations

import math

import pandas as pd

from .config import Config


def planned_steps(config: Config, n_train: int) -> int:
    """Optimiser steps a run of ``config`` takes: ``max_steps``, else ``epochs`` passes over
    ``n_train`` training documents in batches of ``batch_size`` (the last batch counts)."""
    if config.max_steps:
        return int(config.max_steps)
    return int(config.epochs) * math.ceil(n_train / config.batch_size)


def step_seconds(config: Config, steps: int = 20) -> float:
    """Seconds per optimiser step of ``config`` on its device: one warm-up step, then the mean of
    ``steps`` timed steps (data, model and optimiser as in a real run; nothing is written)."""
    import time

    import torch

    from .train import Trainer

    trainer = Trainer(config, progress=False)
    trainer.setup()

    def batches():
        while True:
            yield from trainer._batches(trainer.train_set, trainer.sampler)

    feed = batches()
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    trainer._step(next(feed))
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        trainer._step(next(feed))
    sync()
    return (time.perf_counter() - start) / steps


def time_estimate(step_time: float, runs: dict) -> pd.DataFrame:
    """How long runs take at ``step_time`` seconds per optimiser step.

    Args:
        step_time: seconds per step (:func:`step_seconds`).
        runs: ``{run name: optimiser steps}``.
    Returns:
        One row per run: ``steps`` (int) and ``minutes`` of training (evaluations and the linear
        probe not included), and a last row ``all`` with their sums.
    """
    if not step_time > 0:
        raise ValueError(f"step_time must be a positive number of seconds, got {step_time}")
    table = pd.DataFrame({"steps": pd.Series(runs, dtype="int64")})
    table.loc["all"] = table["steps"].sum()
    table["minutes"] = table["steps"] * step_time / 60
    return table


def device_timing(configs: dict, paper_config: Config | None = None, steps: int = 20,
                  n_train: int | None = None, skip_on_cpu: bool = True) -> str:
    """Time ``steps`` optimiser steps on the reader's device and say, in Markdown, how long the
    chapter's runs (``configs``: ``{run name: Config}``, all timed by the first) and one run of
    the paper-sized profile (``paper_config``, timed itself) will take.

    On a CPU with ``skip_on_cpu`` nothing is timed (20 steps would add a minute to the book's
    build); the text says so and where the timing runs instead.
    """
    from .devices import resolve_device
    from ..data.run_data import load_run_dataset

    first = next(iter(configs.values()))
    device = resolve_device(first.device)
    if skip_on_cpu and device.type == "cpu":
        return (f"Timing skipped: this kernel has no GPU, and {steps} timed steps would add about a minute to "
                "the book's build. On Colab or any machine with a GPU this cell times them and says how long the "
                "chapter's runs and one run of the paper-sized profile (`--profile gpu`) will take there.")
    if n_train is None:
        n_train = len(load_run_dataset(first).split("train"))
    seconds = step_seconds(first, steps)
    mine = time_estimate(seconds, {name: planned_steps(c, n_train) for name, c in configs.items()})
    lines = [f"On {device} one optimiser step of this chapter's runs takes {seconds * 1000:.0f} ms "
             f"({steps} steps timed): its {len(configs)} runs, {int(mine.loc['all', 'steps'])} steps in all, "
             f"train in about {mine.loc['all', 'minutes']:.1f} minutes."]
    if paper_config is not None:
        try:
            paper_n = len(load_run_dataset(paper_config).split("train"))
            paper_seconds = step_seconds(paper_config, steps)
        except Exception as err:  # e.g. roberta-base needs the Hugging Face Hub
            lines.append(f"One run of the paper-sized profile could not be timed here ({str(err).splitlines()[0]}).")
        else:
            total = planned_steps(paper_config, paper_n)
            paper = time_estimate(paper_seconds, {"paper-sized run": total})
            lines.append(f"One run of the paper-sized profile ({paper_config.backbone}, {paper_n} training documents, "
                         f"{total} steps) takes {paper_seconds * 1000:.0f} ms a step: about "
                         f"{paper.loc['all', 'minutes']:.0f} minutes, before its linear evaluation.")
    return " ".join(lines)


__all__ = ["device_timing", "planned_steps", "step_seconds", "time_estimate"]
