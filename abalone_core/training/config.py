"""One validated configuration object for every run, YAML/JSON in and out.

>>> cfg = Config(objective="msc", max_steps=20)
>>> cfg = Config.from_file("run.yaml").replace(seed=1)

Every value is checked when the object is made, so a typo or an impossible value
fails at once instead of after hours of training: types strictly (with :mod:`pydantic`:
no string where a number belongs, no fractional step count, no ``"false"`` string for a
boolean, no infinite learning rate), then ranges. Local paths in ``dataset_kwargs``
(``path``, ``data_dir``, ``csv_path``, ``dict_dir``), ``init_from`` and a backbone folder
are stored absolute, so a run's ``config.yaml`` names the same files from any folder; in a
configuration file (``--config``), a relative data path starts at that file's folder, as in a
grid file.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .layer_cache import DTYPES
from ..method import objectives
from ..method.model import POOLINGS

# The objectives by kind, from their one table (abalone_core.method.objectives), as the table stands on import.
SUPERVISED = objectives.names("classifier")  # bce, focal, asymmetric, db
CONTRASTIVE = objectives.names("contrastive")  # base, bqueue, bqproto, msc; mulsupcon
FROZEN = "frozen"  # no training: linear evaluation of the pre-trained backbone (L_MLM row)
TFIDF = "tfidf-linear"  # TF-IDF features and one-vs-rest linear classifiers (abalone_core.evaluation.tfidf), whole text
TFIDF_CUT = "tfidf-cut"  # the same on the first max_length tokens, the text a neural row sees
TFIDF_OBJECTIVES = objectives.names("tfidf")
OBJECTIVES = objectives.names()
# Settings a checkpoint may be resumed with when they changed, if asked for explicitly.
RESUMABLE_CHANGES = ("lr_backbone", "lr_head", "weight_decay", "grad_clip", "mixed_precision")
# The encoders of a contrastive run that can be linear-evaluated (Config.candidates).
CANDIDATES = ("last", "best_train_loss", "best_val_loss")
LAYER_CACHES = (*DTYPES, "off")  # how the frozen layers' output is kept (Config.layer_cache)


@dataclass
class Config:
    """Settings of one training run (defaults: the paper's, Appendix A, on the offline data/backbone).

    Data
        dataset: registered dataset name (``disaster``, ``foldoc``, ``aapd``, ``rcv1``,
            ``uk-lex``, ``csv``, ``jsonl``, ``hub``); dataset_kwargs: passed to the loader.
        subset: documents kept per split for small runs, e.g. ``{"train": 2000,
            "validation": 500, "test": 1000}``; None keeps everything.
        keep_unlabelled: keep documents without labels for contrastive training
            (they are dropped by default; supervised losses always keep them).
        max_length: tokens per document (300 in the paper).
    Model
        backbone: ``minilm`` (offline default), a folder, or a Hub id; pooling: ``cls``/``mean``;
        proj_dim: projection head output; dropout: backbone dropout.
        init_from: a contrastive run directory (or checkpoint file) whose encoder starts a
            supervised run: the L_*-FT fine-tuning rows.
        train_layers: None trains the whole encoder (the paper). With k, only the top k
            transformer layers (and the heads) train; the embeddings and the layers below are
            frozen, and their output is computed once per document and cached
            (:mod:`abalone_core.training.layer_cache`), which makes a step several times cheaper.
        layer_cache: how the frozen layers' output is kept: ``float16`` (default),
            ``float32`` (bit-exact with running them live), or ``off`` (run them at every step).
    Objective
        objective: ``base``/``bqueue``/``bqproto``/``msc`` (contrastive pre-training, then
            linear evaluation; ``mulsupcon``, Zhang and Wu's loss, likewise),
            ``bce``/``focal``/``asymmetric``/``db`` (supervised), ``frozen`` (linear evaluation
            of the pre-trained backbone, the paper's L_MLM row), ``tfidf-linear`` (no
            network: TF-IDF and linear classifiers on the whole documents, thresholds as the
            library ships them) or ``tfidf-cut`` (the same on the first ``max_length`` tokens).
        temperature, beta, queue_size, momentum: contrastive settings.
        focal_gamma, asl_gamma_pos, asl_gamma_neg, asl_margin: supervised loss settings.
    Optimisation
        epochs, max_steps (a budget that overrides epochs when set), batch_size,
        lr_backbone, lr_head (head, prototypes, classifier), weight_decay (not on
        bias/LayerNorm), warmup_ratio, schedule (``auto``: cosine for contrastive,
        linear for supervised; constant under ``early_stopping``), grad_clip, mixed_precision
        (``auto``: bfloat16 autocast on a GPU or CPU that supports it, float16 on older GPUs,
        float32 elsewhere; or ``bf16``/``fp16``/``no``; the losses are always float32).
        early_stopping: None trains the whole budget (``max_steps`` or ``epochs``). With
            ``p``, the budget becomes a cap and the run stops once its selection metric
            (validation loss with in-batch keys for contrastive rows, validation micro-F1 for
            classifiers) has not improved by more than the tolerance of
            :mod:`abalone_core.training.convergence` for ``p`` evaluations in a row; such a run has
            converged, one that reaches the cap has not. The learning rate stays constant
            after warm-up, so stopping is never an artefact of a schedule decaying to zero.
        lr_head_grid: for the rows that train a classifier (supervised objectives), a list
            of head learning rates: one run per value (in ``output_dir/lr_head=<value>``), and
            the run with the best validation micro-F1 is the result (``lr_head`` is ignored);
            refused for the other objectives, whose classifier is the linear probe (``probe.lrs``).
    Run
        seed, deterministic, device (``auto``/``cpu``/``cuda``/``cuda:1``...),
        output_dir, eval_every (optimiser steps between validation passes; 0 = each epoch),
        save_every (steps between resumable checkpoints; 0 = each epoch),
        probe: overrides of :class:`abalone_core.evaluation.probe.ProbeConfig` for linear evaluation.
        candidates: which encoders of a contrastive run are linear-evaluated, the best on
            validation micro-F1 being reported: None is the paper's three (``last``,
            ``best_train_loss``, ``best_val_loss``); a shorter list saves a linear
            evaluation per encoder left out.

    A run folder belongs to one configuration: resuming it with other settings is refused,
    except for the optimisation settings in ``RESUMABLE_CHANGES`` (learning rates, weight
    decay, clipping, precision) when asked for explicitly (``abalone train
    --resume-with-changes``, ``run(config, allow_changes=...)``), e.g. after a non-finite loss.
    """

    dataset: str = "disaster"
    dataset_kwargs: dict = field(default_factory=dict)
    subset: dict | None = None
    keep_unlabelled: bool = False
    max_length: int = 300

    backbone: str = "minilm"
    pooling: str = "cls"
    proj_dim: int = 256
    dropout: float = 0.1
    init_from: str | None = None
    train_layers: int | None = None
    layer_cache: str = "float16"

    objective: str = "msc"
    temperature: float = 0.1
    beta: float = 0.1
    queue_size: int = 512
    momentum: float = 0.999
    focal_gamma: float = 2.0
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 3.0
    asl_margin: float = 0.3

    epochs: int = 80
    max_steps: int | None = None
    batch_size: int = 32
    lr_backbone: float = 5e-5
    lr_head: float = 5e-5
    lr_head_grid: list | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    schedule: str = "auto"
    grad_clip: float | None = 1.0
    mixed_precision: str = "auto"
    early_stopping: int | None = None

    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    output_dir: str = "runs/default"
    eval_every: int = 0
    save_every: int = 0
    probe: dict = field(default_factory=dict)
    candidates: list | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check every value: first its type (:mod:`pydantic`, strict: no string where a
        number belongs, no fractional step counts, no ``"yes"`` for a boolean, no infinite
        or NaN number), then its range. All problems are reported at once as a
        :class:`ConfigError`, one ``key: what is wrong`` line each."""
        errors: list[str] = []
        bad: set[str] = set()
        for name, value in _typed_values(self, errors, bad).items():
            setattr(self, name, value)

        def need(keys: str, ok, msg: str) -> None:
            """Record ``msg`` unless ``ok()`` holds; skipped when one of ``keys`` already has a type error."""
            if bad & set(keys.split()):
                return
            if not ok():
                errors.append(msg)

        need("objective", lambda: isinstance(self.objective, str) and self.objective in objectives.TABLE,
             f"objective must be one of {list(objectives.TABLE)}, got {self.objective!r}")
        need("temperature", lambda: self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need("beta", lambda: 0 < self.beta <= 1, f"beta must be in (0, 1], got {self.beta}")
        need("queue_size", lambda: self.queue_size >= 1, f"queue_size must be >= 1, got {self.queue_size}")
        need("momentum", lambda: 0 <= self.momentum <= 1, f"momentum must be in [0, 1], got {self.momentum}")
        need("focal_gamma", lambda: self.focal_gamma >= 0, f"focal_gamma must be >= 0, got {self.focal_gamma}")
        need("asl_gamma_pos asl_gamma_neg", lambda: self.asl_gamma_pos >= 0 and self.asl_gamma_neg >= 0,
             "asl_gamma_pos and asl_gamma_neg must be >= 0")
        need("asl_margin", lambda: 0 <= self.asl_margin < 1, f"asl_margin must be in [0, 1), got {self.asl_margin}")
        need("max_length", lambda: self.max_length >= 8, f"max_length must be >= 8 tokens, got {self.max_length}")
        need("proj_dim", lambda: self.proj_dim >= 1, f"proj_dim must be >= 1, got {self.proj_dim}")
        need("dropout", lambda: 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        need("train_layers", lambda: self.train_layers is None or self.train_layers >= 0,
             f"train_layers must be null (whole encoder) or an integer >= 0, got {self.train_layers!r}")
        need("layer_cache", lambda: self.layer_cache in LAYER_CACHES,
             f"layer_cache must be {', '.join(LAYER_CACHES[:-1])} or {LAYER_CACHES[-1]}, got {self.layer_cache!r}")
        need("candidates", lambda: self.candidates is None or (
            isinstance(self.candidates, (list, tuple)) and len(self.candidates) > 0
            and all(isinstance(c, str) for c in self.candidates)
            and set(self.candidates) <= set(CANDIDATES)),
            f"candidates must be None or a non-empty list of {', '.join(CANDIDATES)}; "
            f"got {self.candidates!r}")
        need("pooling", lambda: self.pooling in POOLINGS,
             f"pooling must be {' or '.join(map(repr, POOLINGS))}, got {self.pooling!r}")
        need("epochs", lambda: self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need("max_steps", lambda: self.max_steps is None or self.max_steps >= 1,
             f"max_steps must be null or >= 1, got {self.max_steps}")
        need("batch_size", lambda: self.batch_size >= 2,
             f"batch_size must be >= 2 (contrastive losses need pairs), got {self.batch_size}")
        need("lr_backbone", lambda: self.lr_backbone > 0, f"lr_backbone must be > 0, got {self.lr_backbone}")
        need("lr_head", lambda: self.lr_head > 0, f"lr_head must be > 0, got {self.lr_head}")
        if self.lr_head_grid is not None and "lr_head_grid" not in bad:
            grid = self.lr_head_grid
            ok = len(grid) > 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in grid)
            need("lr_head_grid", lambda: ok,
                 f"lr_head_grid must be null or a non-empty list of positive numbers, got {grid!r}")
            if ok:
                self.lr_head_grid = [float(v) for v in grid]
        need("weight_decay", lambda: self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need("warmup_ratio", lambda: 0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need("schedule", lambda: self.schedule in ("auto", "cosine", "linear", "constant"),
             f"schedule must be auto, cosine, linear or constant, got {self.schedule!r}")
        need("grad_clip", lambda: self.grad_clip is None or self.grad_clip > 0,
             f"grad_clip must be null or > 0, got {self.grad_clip}")
        need("mixed_precision", lambda: self.mixed_precision in ("auto", "bf16", "fp16", "no"),
             f"mixed_precision must be auto, bf16, fp16 or no, got {self.mixed_precision!r}")
        need("eval_every", lambda: self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        need("early_stopping", lambda: self.early_stopping is None or self.early_stopping >= 1,
             f"early_stopping must be null (train the whole budget) or a patience >= 1 evaluations, "
             f"got {self.early_stopping!r}")
        need("early_stopping schedule", lambda: self.early_stopping is None or self.schedule in ("auto", "constant"),
             f"early_stopping needs a learning rate that does not decay before the cap (schedule auto or "
             f"constant), got schedule={self.schedule!r}: a decaying schedule makes any run look converged "
             "near its end")
        need("save_every", lambda: self.save_every >= 0, f"save_every must be >= 0, got {self.save_every}")
        need("device", lambda: DEVICE.fullmatch(self.device) is not None,
             f"device must be auto, cpu, cuda, cuda:<index> or mps, got {self.device!r}")
        need("output_dir", lambda: self.output_dir.strip() != "",
             "output_dir must name a folder, got an empty string")
        need("dataset", lambda: self.dataset.strip() != "", "dataset must name a dataset, got an empty string")
        need("backbone", lambda: self.backbone.strip() != "", "backbone must name a model, got an empty string")
        need("dataset_kwargs", lambda: all(isinstance(k, str) for k in self.dataset_kwargs),
             f"dataset_kwargs keys must be argument names (strings), got {self.dataset_kwargs!r}")
        if self.subset is not None and "subset" not in bad:
            unknown = set(self.subset) - {"train", "validation", "test"}
            need("subset", lambda: not unknown, f"subset keys must be train/validation/test, got {sorted(map(str, unknown))}")
            need("subset", lambda: all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                       for v in self.subset.values()),
                 f"subset values must be positive integers (documents per split), got {self.subset}")
        known = isinstance(self.objective, str) and self.objective in objectives.TABLE
        kind = objectives.TABLE[self.objective].kind if known else None
        classifiers = ", ".join(objectives.names("classifier"))
        need("lr_head_grid objective", lambda: self.lr_head_grid is None or kind in ("classifier", None),
             f"lr_head_grid is for the objectives that train a classifier ({classifiers}), not "
             f"{self.objective!r} (a linear probe chooses its own learning rate: probe.lrs); remove lr_head_grid")
        need("init_from objective", lambda: self.init_from is None or kind in ("classifier", None),
             f"init_from (fine-tuning a contrastive encoder) needs a supervised objective: {classifiers}")
        if self.probe and "probe" not in bad:
            from ..evaluation.probe import ProbeConfig

            known = {f.name for f in fields(ProbeConfig)}
            unknown = set(self.probe) - known
            need("probe", lambda: not unknown, f"unknown probe settings {sorted(map(str, unknown))}; known: {sorted(known)}")
            if not unknown:
                try:
                    ProbeConfig(**self.probe)
                except (ValueError, TypeError) as err:
                    errors.append(f"probe: {err}")
        if errors:
            raise ConfigError(errors)
        self._resolve_paths()

    def _resolve_paths(self) -> None:
        """Local paths become absolute, so a run's config.yaml means the same files from any folder."""
        kwargs = dict(self.dataset_kwargs)
        for key in PATH_KEYS:
            value = kwargs.get(key)
            if isinstance(value, dict):
                kwargs[key] = {k: _absolute(v) for k, v in value.items()}
            elif value is not None:
                kwargs[key] = _absolute(value)
        self.dataset_kwargs = kwargs
        if self.init_from is not None:
            self.init_from = _absolute(self.init_from)
        if self.backbone != "minilm" and os.path.isdir(os.path.expanduser(self.backbone)):
            self.backbone = _absolute(self.backbone)

    @property
    def spec(self) -> "objectives.Objective":
        """What the objective is (:mod:`abalone_core.method.objectives`): its kind, loss, queue, prototypes."""
        return objectives.get(self.objective)

    @property
    def contrastive(self) -> bool:
        return self.spec.kind == "contrastive"

    @property
    def resolved_schedule(self) -> str:
        if self.schedule != "auto":
            return self.schedule
        if self.early_stopping is not None:
            return "constant"
        return "cosine" if self.contrastive else "linear"

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | None = None) -> "Config":
        """A validated configuration from a mapping; ``source`` (a file name, ``--set``) is
        named in the error."""
        if not isinstance(d, dict):
            raise ConfigError([f"the settings must be a mapping of key: value, got {type(d).__name__}"], source)
        known = [f.name for f in fields(cls)]
        unknown = sorted(map(str, set(d) - set(known)))
        if unknown:
            close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
            hints = [f"{c[0]!r} for {k!r}" for k, c in close.items() if c]
            message = f"unknown configuration keys {unknown}; " + (
                f"did you mean {', '.join(hints)}?" if hints else f"known keys: {', '.join(known)}")
            raise ConfigError([message], source)
        try:
            return cls(**d)
        except ConfigError as err:
            raise ConfigError(err.problems, source) from None

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        """Read a ``.yaml``/``.yml``/``.json`` file. Every problem names the file (and the line
        of a syntax error); an empty or comment-only file is an error, not the defaults.
        Relative data paths in it start at the file's folder (:func:`read_config_file`)."""
        return cls.from_dict(read_config_file(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the configuration atomically (YAML for .yaml/.yml, else JSON)."""
        from ..atomic import write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            write_text(path, json.dumps(self.to_dict(), indent=2))

    def replace(self, **changes) -> "Config":
        """A validated copy with some values changed (unknown keys rejected)."""
        return self.from_dict({**self.to_dict(), **changes})

    def differences(self, other: "Config | dict", ignore=("output_dir", "device")) -> dict[str, tuple]:
        """``{key: (mine, other's)}`` for the settings that differ, ``ignore`` left out; empty: the same run.

        The one rule by which a run folder, a checkpoint or a finished run belongs to a
        configuration: ``other`` (a Config, or the settings of a run's config.yaml, checkpoint
        or metrics.json) is read with today's defaults filled in and paths resolved, and
        tuples and lists with the same items are equal."""
        theirs = other.to_dict() if isinstance(other, Config) else _comparable(other)
        mine = _plain(self.to_dict())
        theirs = _plain(theirs)
        return {k: (mine[k], theirs.get(k)) for k in mine if k not in ignore and mine[k] != theirs.get(k)}


class ConfigError(ValueError):
    """Invalid configuration: ``problems`` holds one line per wrong setting; ``source``
    names where the settings came from (a file, ``--set``)."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid configuration{where}:\n  - " + "\n  - ".join(self.problems))


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# dataset_kwargs that name local files or folders (csv/jsonl ``path``, possibly one per split;
# the ``data_dir``, ``csv_path``, ``dict_dir`` of the disaster and FOLDOC loaders, and the
# index files of debtags).
PATH_KEYS = ("path", "data_dir", "csv_path", "dict_dir", "packages_path", "translation_path")

# What each kind of setting must be, in words, for the error messages.
_KINDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
          "dict": "a mapping {key: value}", "list": "a list [...]"}
_SCHEMA = None


def _comparable(d: dict) -> dict:
    """Saved settings with today's defaults filled in and paths resolved (as they are, if invalid)."""
    try:
        return Config.from_dict(dict(d)).to_dict()
    except (ConfigError, TypeError):
        return dict(d)


def _absolute(value):
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return os.path.abspath(os.path.expanduser(str(value)))
    return value


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))  # tuples -> lists, as in a saved file


def _number(value):
    # YAML 1.1 reads "5e-5" (no dot) as a string: accept numbers written that way.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _integer(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _schema():
    """A strict pydantic model of the fields of :class:`Config` (built once)."""
    global _SCHEMA
    if _SCHEMA is None:
        from typing import Annotated, Optional

        from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

        types = {
            "float": Annotated[float, BeforeValidator(_number), Field(strict=True, allow_inf_nan=False)],
            "int": Annotated[StrictInt, BeforeValidator(_integer)],
            "bool": StrictBool, "str": StrictStr, "dict": dict, "list": list,
        }
        spec = {}
        for f in fields(Config):
            kind, optional = _kind(f)
            spec[f.name] = (Optional[types[kind]] if optional else types[kind], None)
        _SCHEMA = create_model("ConfigSchema", __config__=ConfigDict(strict=False), **spec)
    return _SCHEMA


def _kind(f) -> tuple[str, bool]:
    """('float' | 'int' | 'bool' | 'str' | 'dict' | 'list', whether None is allowed) of a field."""
    text = str(f.type)
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    kind = next(p for p in parts if p != "None")
    return kind, optional


def _typed_values(cfg: Config, errors: list, bad: set) -> dict:
    """Check each field's type with the pydantic schema; returns the coerced values of the
    fields that passed (integral floats -> int, numeric strings -> float, tuples -> lists)."""
    from pydantic import ValidationError

    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    try:
        model = _schema()(**values)
    except ValidationError as err:
        model = None
        for e in err.errors():
            name = str(e["loc"][0])
            if name in bad:
                continue
            bad.add(name)
            f = next(f for f in fields(cfg) if f.name == name)
            kind, optional = _kind(f)
            expected = _KINDS[kind] + (" or null" if optional else "")
            value = values[name]
            if kind == "int" and isinstance(value, float) and math.isfinite(value):
                expected = "a whole number " + ("or null " if optional else "") + "(no fraction)"
            if e["type"] == "finite_number":
                expected = "a finite number"
            if kind == "str" and isinstance(value, bool):  # YAML 1.1: unquoted no/yes/off/on
                expected += f" (YAML reads an unquoted yes/no/on/off as {str(value).lower()}: quote the word)"
            shown = "null" if value is None else repr(value)
            errors.append(f"{name} must be {expected}, got {shown}")
    if model is None:  # the fields that passed, coerced: validate them again without the others
        good = {k: v for k, v in values.items() if k not in bad}
        model = _schema()(**good)
        return {name: getattr(model, name) for name in good}
    return {name: getattr(model, name) for name in values}


def read_settings(path: str | Path) -> dict:
    """The mapping of settings in a YAML or JSON file; every problem names the file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a .yaml, .yml or .json configuration file")
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"configuration files are .yaml, .yml or .json, got {path.name}")
    if not path.exists():
        raise FileNotFoundError(f"configuration file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    if path.suffix == ".json":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {err.lineno}, column {err.colno}: JSON syntax error ({err.msg}); "
                             "fix that line") from None
    else:
        import yaml

        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise yaml_syntax_error(path, err) from None
    if d is None:
        raise ValueError(f"{path} holds no settings (it is empty or only comments); write the settings to change, "
                         "e.g. `objective: msc`, or leave out --config to use the defaults")
    if not isinstance(d, dict):
        raise ValueError(f"{path} must hold a mapping of settings (key: value lines), got {type(d).__name__}")
    return d


def yaml_syntax_error(path, err) -> ValueError:
    """A YAML parser's error as one line naming the file, line and column."""
    mark = getattr(err, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return ValueError(f"{path}{where}: YAML syntax error ({problem}); fix that line")


def resolve_data_paths(params: dict, base: Path) -> dict:
    """``params`` with the relative local paths of ``dataset_kwargs`` (:data:`PATH_KEYS`:
    ``path``, a file or ``{split: file}``, ``data_dir``, ...) made absolute from ``base``: the
    folder of the grid file or configuration file that names them."""
    kwargs = params.get("dataset_kwargs")
    if not isinstance(kwargs, dict):
        return params

    def absolute(value):
        if isinstance(value, str) and value.strip() and not Path(value).expanduser().is_absolute():
            return str((base / value).resolve())
        return value

    out = dict(kwargs)
    for key in PATH_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {split: absolute(v) for split, v in out[key].items()}
        elif key in out:
            out[key] = absolute(out[key])
    return {**params, "dataset_kwargs": out}


def read_config_file(path: str | Path) -> dict:
    """:func:`read_settings` of a configuration file, with the relative local paths of its
    ``dataset_kwargs`` (:data:`PATH_KEYS`: ``path``, a file or ``{split: file}``, ``data_dir``, ...)
    made absolute from the file's folder, as in a grid file: the file means the same data from
    any working folder."""
    return resolve_data_paths(read_settings(path), Path(path).resolve().parent)


__all__ = ["Config", "ConfigError", "RESUMABLE_CHANGES", "OBJECTIVES", "CONTRASTIVE", "SUPERVISED", "FROZEN", "TFIDF", "TFIDF_CUT", "TFIDF_OBJECTIVES",
           "PATH_KEYS", "read_config_file", "read_settings", "resolve_data_paths"]
