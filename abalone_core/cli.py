"""Command line: ``abalone train | evaluate | embed | stats | sweep``.

    abalone train --config run.yaml --set objective=msc --set max_steps=500
    abalone train --set dataset=disaster --set "subset={train: 2000}" --output runs/msc
    abalone train ... --restart              # start over in a folder that holds another run
    abalone train ... --resume-with-changes  # continue a checkpoint with new learning rates,
                                             # clipping or precision (after a non-finite loss)
    abalone evaluate runs/msc            # scores of a finished run (metrics.json)
    abalone embed runs/msc --split test --out test.npy
    abalone stats disaster               # long-tail statistics of a dataset
    abalone sweep sweeps/paper_grid.yaml --dry-run   # a papermill grid of runs

Every expected failure (a wrong setting, bad data, a folder holding another run, a damaged
file, a full disk) ends with one ``error:`` line naming the file, key or row and what to do,
and exit code 2; Ctrl-C (or SIGTERM) ends with one ``interrupted:`` line and exit code 130.
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from .training.config import RESUMABLE_CHANGES, Config, ConfigError, read_config_file
from .training.overrides import parse_overrides

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block)."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def _config(args) -> Config:
    base = read_config_file(args.config) if args.config else {}
    sources = [args.config] if args.config else []
    if args.set:
        base = parse_overrides(args.set, base)
        sources.append("--set")
    if getattr(args, "output", None) is not None:
        base["output_dir"] = args.output
        sources.append("--output")
    return Config.from_dict(base, source=", ".join(sources) or None)


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "n/a"


def _summary(metrics: dict) -> str:
    t = metrics["test"]
    return (f"{metrics.get('objective', '?'):<11} test micro-F1 {_fmt(t.get('micro_f1'), '.2f')}  "
            f"macro-F1 {_fmt(t.get('macro_f1'), '.2f')}  Hamming x1e3 {_fmt(t.get('hamming'), '.2f')}  "
            f"(head/medium/tail F1 {_fmt(t.get('f1_head'), '.1f')}/{_fmt(t.get('f1_medium'), '.1f')}/"
            f"{_fmt(t.get('f1_tail'), '.1f')})")


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM outside the training loop (which saves a checkpoint on it) acts like Ctrl-C."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_train(args) -> int:
    from .training.runs import run

    if args.restart and args.resume_with_changes:
        raise ValueError("--restart starts over and --resume-with-changes continues the checkpoint: give one of them")
    cfg = _config(args)
    print(f"output: {cfg.output_dir}", file=sys.stderr)
    allow = RESUMABLE_CHANGES if args.resume_with_changes else ()
    with _sigterm_as_interrupt():
        metrics = run(cfg, resume=not args.restart, progress=not args.quiet, allow_changes=allow)
    if metrics:  # empty on every process but the first under torchrun
        print(_summary(metrics))
    return 0


def cmd_evaluate(args) -> int:
    import json

    from .training.run_folder import read_metrics

    metrics = read_metrics(args.run)
    missing = [k for k in ("validation", "test") if not isinstance(metrics.get(k), dict)]
    if missing:
        raise ValueError(f"{Path(args.run) / 'metrics.json'} has no {' or '.join(missing)} scores: it is not the "
                         "record of a finished run; run `abalone train` again for that folder (add --restart to "
                         "train it again)")
    print(_summary(metrics))
    if args.json:
        print(json.dumps({k: metrics[k] for k in ("validation", "test")}, indent=2))
    return 0


def embed_paths(out: str) -> tuple[Path, Path]:
    """(features file, labels file) that ``abalone embed --out OUT`` writes: ``OUT`` with
    ``.npy`` added when it lacks it (as numpy would), and ``<OUT without .npy>.labels.npy``."""
    path = Path(out)
    if path.suffix != ".npy":
        path = path.with_name(path.name + ".npy")
    return path, path.with_name(path.name[:-len(".npy")] + ".labels.npy")


def cmd_embed(args) -> int:
    from . import atomic
    from .evaluation.evaluate import embed
    from .training.devices import check_device
    from .training.encoders import load_run_encoder
    from .data.run_data import prepare_data

    features, labels = embed_paths(args.out)
    if not features.parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: folder {features.parent} does not exist; create it first "
                                "or choose another path")
    existing = [str(p) for p in (features, labels) if p.exists()]
    if existing and not args.force:
        raise FileExistsError(f"--out {args.out}: {' and '.join(existing)} already exist(s); add --force to replace "
                              "them, or choose another path")
    atomic.check_writable(features.parent)
    device = check_device(args.device)
    encoder, tokenizer, cfg = load_run_encoder(args.run)
    data = prepare_data(cfg, tokenizer)
    x = embed(encoder.to(device), data.ids[args.split], data.pad_token_id, device=device)
    y = data.labels[args.split]
    atomic.save_numpy(features, x)
    atomic.save_numpy(labels, y)
    print(f"wrote {features} {x.shape} and {labels} {y.shape}")
    return 0


def cmd_stats(args) -> int:
    from .data import load_dataset

    kwargs = parse_overrides(args.set or [], loader=True)
    ds = load_dataset(args.dataset, **kwargs)
    stats = ds.stats()
    print(stats["splits"].to_string())
    labels = stats["labels"]
    print(labels.groupby("group").size().to_string() if "group" in labels else "")
    return 0


def one_line(err: BaseException) -> str:
    """An exception's message on one line (a configuration's problems joined by '; ')."""
    if isinstance(err, ConfigError):
        where = f" in {err.source}" if err.source else ""
        return f"invalid configuration{where}: " + "; ".join(err.problems)
    if isinstance(err, OSError) and err.filename and err.strerror and not str(err).startswith(str(err.filename)):
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error instead of one line")
    p = _Parser(prog="abalone", description="ABALONE training and evaluation")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", parents=[debug], help="train (or resume) and evaluate one configuration")
    t.add_argument("--config", help="YAML or JSON configuration file")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting (YAML value; text settings as typed); a dotted key sets one entry of a "
                        "mapping: dataset_kwargs.label_sep=|")
    t.add_argument("--output", help="run directory (output_dir)")
    t.add_argument("--restart", action="store_true",
                   help="start over: replace the run files of the output folder (another configuration, a damaged "
                        "or missing checkpoint)")
    t.add_argument("--resume-with-changes", action="store_true",
                   help=f"continue the checkpoint although these settings changed: {', '.join(RESUMABLE_CHANGES)}")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", parents=[debug], help="print the scores of a finished run")
    e.add_argument("run")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)

    m = sub.add_parser("embed", parents=[debug], help="save document representations (head discarded) of a run")
    m.add_argument("run")
    m.add_argument("--split", default="test", choices=("train", "validation", "test"))
    m.add_argument("--out", required=True, help="features file (.npy added if missing); labels go to "
                                                "<name>.labels.npy beside it")
    m.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda[:i], mps")
    m.add_argument("--force", action="store_true", help="replace the files of --out if they exist")
    m.set_defaults(fn=cmd_embed)

    s = sub.add_parser("stats", parents=[debug], help="long-tail statistics of a dataset")
    s.add_argument("dataset")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="loader keyword argument")
    s.set_defaults(fn=cmd_stats)

    from .sweep import add_parser as add_sweep_parser

    sweep = add_sweep_parser(sub)
    if sweep is not None and "--debug" not in sweep._option_string_actions:
        sweep.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show the traceback of an error instead of one line")
    return p


# Failures a user can cause and fix: one line, exit code 2. Anything else is a bug: one
# line too, exit code 1, with --debug for its traceback.
EXPECTED = (ValueError, OSError, FloatingPointError, RuntimeError, ImportError)


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as stop:  # --help, or a one-line usage error
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from .errors import Interrupted

    try:
        return args.fn(args)
    except Interrupted as err:
        if args.debug:
            raise
        print(f"interrupted: {one_line(err)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted: every file written so far is complete; run the same command again to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the command line answers every failure in one line
        if args.debug:
            raise
        if isinstance(err, EXPECTED):
            print(f"error: {one_line(err)}", file=sys.stderr)
            return EXIT_ERROR
        print(f"error: unexpected {type(err).__name__}: {one_line(err)} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
