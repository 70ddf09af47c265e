"""The encoder of a run: its backbone checked before any download (:func:`check_backbone`),
built with its tokenizer (:func:`build_encoder`), the frozen bottom's states cached
(:func:`cache_frozen_layers`), and the weights a finished run saved read back
(:func:`load_weights`, :func:`load_run_encoder`), and the trained part of a run with one
trained layer shipped as a small file (:func:`export_trained`, :func:`load_exported`).
Used by :mod:`abalone_core.training.train`, :mod:`abalone_core.training.runs`, the command
line and the chapters that embed documents (chapter 7 loads the shipped encoders).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from .config import Config
from ..method.objectives import TABLE, names
from ..errors import RunFolderError
from ..method.model import MINILM, TextEncoder, load_backbone
from ..data.run_data import Data
from .run_folder import BEST_MODEL, CONFIG, METRICS, read_metrics


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_backbone(name: str) -> None:
    """Fail fast on a backbone that cannot load: a missing folder, a name that is no Hub id,
    or a Hub id absent from the local cache while the Hub is off (``HF_HUB_OFFLINE=1``),
    instead of minutes of download retries. A Hub id with the Hub on is left to
    ``from_pretrained``."""
    if name == MINILM:
        return
    folder = Path(name).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"backbone={name!r} is a file; give a model folder (with config.json) or a Hub id")
        if not (folder / "config.json").exists():
            raise ValueError(f"backbone folder {folder} has no config.json: it is not a saved transformers "
                             "model (save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))")
        return
    hint = "the offline default is backbone=minilm"
    if name.startswith((".", "/", "~")) or "\\" in name or HUB_ID.fullmatch(name) is None:
        raise ValueError(f"backbone={name!r}: no such folder, and it is not a Hugging Face Hub id "
                         f"(owner/name); give an existing model folder or a Hub id ({hint})")
    if _hub_offline():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - an unusual cache layout: let from_pretrained decide
            return
        if not isinstance(cached, str):
            raise ValueError(f"backbone={name!r} is not a local folder, and with HF_HUB_OFFLINE=1 it must be in the "
                             f"Hub cache, where it is not; on a machine with the Hub run `hf download {name}` (or "
                             f"unset HF_HUB_OFFLINE), or give a local folder ({hint})")


def max_positions(backbone) -> int | None:
    """Longest input, in tokens, that a backbone's position embeddings allow (None if unknown).
    RoBERTa-style models reserve ``padding_idx + 1`` positions."""
    positions = getattr(getattr(backbone, "config", None), "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    padding_idx = getattr(getattr(backbone, "embeddings", None), "padding_idx", None)
    return positions - (padding_idx + 1 if isinstance(padding_idx, int) else 0)


def build_encoder(config: Config) -> tuple[TextEncoder, object]:
    """The encoder and tokenizer of a configuration; ``max_length`` above the backbone's
    position embeddings is refused here, before any data is tokenised."""
    check_backbone(config.backbone)
    backbone, tokenizer = load_backbone(config.backbone, dropout=config.dropout)
    limit = max_positions(backbone)
    if limit is not None and config.max_length > limit:
        raise ValueError(f"max_length={config.max_length} is above the {limit} positions of backbone "
                         f"{config.backbone!r}; set max_length to {limit} or less")
    encoder = TextEncoder(backbone, pooling=config.pooling, dim=config.proj_dim, train_layers=config.train_layers)
    return encoder, tokenizer


def cache_frozen_layers(config: Config, encoder: TextEncoder, tokenizer, data: "Data", device,
                        progress: bool = True) -> None:
    """Replace ``data.ids`` by the frozen bottom's cached states (``train_layers`` set and
    ``layer_cache`` not ``off``); nothing to do otherwise."""
    if config.train_layers is None or config.layer_cache == "off":
        return
    from .layer_cache import frozen_states

    tag = f"{config.backbone}|{type(tokenizer).__name__}|{len(tokenizer)}|{config.max_length}"
    encoder.to(device)
    data.ids = {s: frozen_states(encoder, ids, tag, config.layer_cache, batch_size=2 * config.batch_size,
                                 device=device, progress=progress)
                for s, ids in data.ids.items()}


def load_weights(path: str | Path, what: str = "weights", map_location="cpu", weights_only: bool | None = None):
    """``torch.load`` of a run file; a missing, empty, truncated or corrupt file is a
    :class:`RunFolderError` naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise RunFolderError(f"{path} is empty ({what}; a write was cut short); train that run again "
                             "(abalone train --restart)")
    try:
        if weights_only is None:
            return torch.load(path, map_location=map_location)
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunFolderError(f"{path} is unreadable ({what}, truncated or corrupt: {reason[:120]}); train that "
                             "run again (abalone train --restart)") from None


def load_encoder_state(path: str | Path, setting: str | None = None) -> dict:
    """Encoder weights from a contrastive run directory (its selected candidate) or a file;
    ``setting`` (``init_from``) is named in the errors."""
    path = Path(path)
    key = f"{setting}: " if setting else ""
    if not path.exists():
        raise FileNotFoundError(f"{key}no encoder weights at {path} (it does not exist); give the folder of a "
                                "finished contrastive run, or an encoder file")
    if path.is_dir():
        metrics = path / METRICS
        if not metrics.exists():
            raise FileNotFoundError(f"{key}{path} has no metrics.json: finish (or resume) that contrastive run first")
        record = read_metrics(path)
        objective = record.get("objective") or (record.get("config") or {}).get("objective")
        if objective is not None and (objective not in TABLE or TABLE[objective].kind != "contrastive"):
            raise ValueError(f"{key}{path} is a {objective} run: it trained no contrastive encoder; give the folder "
                             f"of a finished contrastive run ({', '.join(names('contrastive'))})")
        chosen = record.get("selected_candidate", "last")
        path = path / f"encoder_{chosen}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{key}no encoder weights at {path}")
    return load_weights(path, "encoder weights")


def load_run_encoder(run_dir):
    """Rebuild the encoder of a finished run, projection head discarded.

    Contrastive runs load their selected candidate, supervised runs the encoder part of
    ``model_best.pt`` (on top of ``init_from`` for fine-tuning), ``frozen`` runs the
    pre-trained backbone.

    Returns:
        (encoder, tokenizer, config)
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise ValueError(f"{run_dir} is a file: give a run folder (the --output folder of `abalone train`)")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist: give the --output folder of `abalone train`")
    if not (run_dir / METRICS).exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: train (or resume) it first")
    search = read_metrics(run_dir).get("lr_head_search")
    if search:  # a head learning-rate grid: the selected run
        run_dir = run_dir / search["selected_run"]
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: it is not a finished run folder")
    cfg = Config.from_file(run_dir / CONFIG)
    if not cfg.spec.encoder:
        raise ValueError(f"{run_dir} is a {cfg.objective} run: it has no encoder to embed with")
    encoder, tokenizer = build_encoder(cfg)
    if cfg.contrastive:
        encoder.load_state_dict(load_encoder_state(run_dir))
    elif cfg.spec.trains:
        if cfg.init_from:
            encoder.load_state_dict(load_encoder_state(cfg.init_from))
        state = load_weights(run_dir / BEST_MODEL, "classifier weights")
        body = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        missing, unexpected = encoder.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise RunFolderError(f"{run_dir}/model_best.pt does not match the encoder of its config.yaml; train "
                                 "that run again (abalone train --restart)")
    return encoder.eval(), tokenizer, cfg


def frozen_digest(encoder: TextEncoder) -> str:
    """sha256 (first 16 hex digits) of the weights an encoder does not train: the backbone a
    shipped trained part must be put back on top of."""
    h = hashlib.sha256()
    for name, p in encoder.named_parameters():
        if not p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def export_trained(run_dir, path, record: dict | None = None, dtype: torch.dtype = torch.float16) -> dict:
    """Write the trained part of a finished run with ``train_layers`` set (its top layers, the
    pooling and the projection head: a few MB for one MiniLM layer) to ``path`` in ``dtype``,
    and its provenance to ``path`` with the suffix ``.json``; returns the provenance.

    The provenance holds the run's configuration (enough to rebuild the encoder), its
    selected candidate, steps and convergence, the digest of the frozen backbone it sits on
    (:func:`frozen_digest`), the sha256 of the weights file, and ``record`` (e.g. the grid's
    row of the run: git revision, finish time) when given.
    """
    from ..atomic import save_torch, write_text

    encoder, _, cfg = load_run_encoder(run_dir)
    if cfg.train_layers is None:
        raise ValueError(f"{run_dir} trains the whole encoder (train_layers unset): its weights are the whole "
                         "backbone, not a small trained part; export a run with train_layers set")
    part = {k: p.detach().to(dtype).clone() for k, p in encoder.named_parameters() if p.requires_grad}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_torch(part, path)
    metrics = read_metrics(run_dir)
    provenance = {
        "run": Path(run_dir).name,
        "objective": cfg.objective, "dataset": cfg.dataset, "seed": cfg.seed, "train_layers": cfg.train_layers,
        "selected_candidate": metrics.get("selected_candidate"), "steps": metrics.get("steps"),
        "converged": metrics.get("converged"), "dtype": str(dtype).replace("torch.", ""),
        "parameters": int(sum(t.numel() for t in part.values())),
        "frozen_digest": frozen_digest(encoder),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "config": cfg.to_dict(),
        "record": record or {},
    }
    write_text(path.with_suffix(".json"), json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n")
    return provenance


def load_exported(path):
    """Rebuild an encoder from a file of :func:`export_trained` (and its ``.json``): the
    pre-trained backbone of the recorded configuration with the shipped part on top, in
    float32, projection head discarded as in :func:`load_run_encoder`. A file whose sha256
    or whose backbone's frozen weights differ from the provenance is refused.

    Returns:
        (encoder, tokenizer, config, provenance)
    """
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"a shipped encoder needs {path.name} and {meta_path.name} in {path.parent}; "
                                "write them with scripts/export_encoders.py")
    meta = json.loads(meta_path.read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise RunFolderError(f"{path} does not match the sha256 in {meta_path.name} (a changed or damaged file); "
                             "export it again with scripts/export_encoders.py")
    cfg = Config.from_dict(meta["config"], source=str(meta_path))
    encoder, tokenizer = build_encoder(cfg)
    if frozen_digest(encoder) != meta.get("frozen_digest"):
        raise ValueError(f"{path.name} was trained on top of another {cfg.backbone!r} backbone than the one "
                         "installed here (the frozen weights differ); install the same backbone or train the "
                         "run again")
    part = load_weights(path, "shipped encoder", weights_only=True)
    trained = {k for k, p in encoder.named_parameters() if p.requires_grad}
    if set(part) != trained:
        raise RunFolderError(f"{path} holds other parameters than the trained part of its configuration "
                             f"({len(set(part) ^ trained)} differ); export it again")
    state = encoder.state_dict()
    state.update({k: v.to(state[k].dtype) for k, v in part.items()})
    encoder.load_state_dict(state)
    return encoder.eval(), tokenizer, cfg, meta


__all__ = ["check_backbone", "max_positions", "build_encoder", "cache_frozen_layers", "load_weights",
           "load_encoder_state", "load_run_encoder",
           "frozen_digest", "export_trained", "load_exported"]
