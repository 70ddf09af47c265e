"""What several test modules share: tiny transformers, synthetic documents and the book's chapters.

Importable as ``helpers`` (pyproject's ``pythonpath = ["tests"]``); the fixtures built on it
are in ``conftest.py``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- tiny transformers
WORDS = ["flood", "water", "food", "fire", "smoke", "help", "need", "medical", "doctor", "road",
         "blocked", "shelter", "tent", "rain", "storm", "wind", "earthquake", "child", "missing", "aid"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0 to 4
TOPICS = {  # label -> words that make a document about it
    "water": ["flood", "water", "rain"], "food": ["food", "aid", "need"], "fire": ["fire", "smoke"],
    "medical": ["medical", "doctor", "help"], "shelter": ["shelter", "tent"], "storm": ["storm", "wind"],
}


def tiny_bert(vocab_size: int = 50, hidden_size: int = 16, layers: int = 2, max_positions: int = 64,
              dropout: float = 0.0, seed: int | None = 0):
    """A randomly initialised BERT small enough for unit tests (``seed`` None: the torch RNG as it is)."""
    import torch
    from transformers import BertConfig, BertModel

    if seed is not None:
        torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=max_positions,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertModel(cfg)


def tiny_encoder(dim: int = 8, pooling: str = "cls", train_layers: int | None = None, **bert):
    """:class:`abalone_core.method.model.TextEncoder` on :func:`tiny_bert` (``bert``: its arguments)."""
    from abalone_core.method.model import TextEncoder

    return TextEncoder(tiny_bert(**bert), pooling=pooling, dim=dim, train_layers=train_layers)


def save_tiny_backbone(folder: Path, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> str:
    """A tiny BERT with a vocabulary of :data:`WORDS` and its tokenizer saved to ``folder``
    (what ``Config.backbone`` takes); dropout as in BERT's defaults; ``seed`` draws its weights."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    vocab = SPECIAL + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden_size, max_position_embeddings=64)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(folder)
    return str(folder)


def make_documents(n: int, seed: int = 0):
    """Synthetic long-tailed multi-label documents: texts from topic words plus noise."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    freq = 1.0 / np.arange(1, len(names) + 1)
    freq /= freq.sum()
    texts, labels = [], []
    for _ in range(n):
        k = rng.integers(0, 3)
        chosen = sorted(set(rng.choice(len(names), size=k, p=freq))) if k else []
        words = [w for c in chosen for w in rng.choice(TOPICS[names[c]], size=2)]
        words += list(rng.choice(WORDS, size=rng.integers(1, 4)))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append([names[c] for c in chosen])
    return texts, labels


# --------------------------------------------------------------------------- the book
CHAPTERS = ["00_worked_example", "01_long_tails", "02_lack_of_positives", "03_attraction_repulsion", "04_contrastive_pretraining",
            "05_evaluation", "06_supervised_baselines", "07_representations", "08_results"]
WITH_FIGURES = set(CHAPTERS)  # chapter 8: the committed sweep results in results/sweep_cpu
BOOK_GROUP = "book"  # the unit of work, under pytest -n N, of the tests that need the executed chapters


def load_build_script():
    """scripts/build_book.py as a module (``build_book``)."""
    if "build_book" in sys.modules:
        return sys.modules["build_book"]
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module
    spec.loader.exec_module(module)
    return module


def book_folder(tmp_path_factory) -> Path:
    """Where this session executes the chapters and builds the book: one folder for every
    xdist worker of the session (the parent of the workers' basetemp), or ``$ABALONE_BOOK_BUILD``,
    so that a later session reuses the execution recorded there (``report.json``)."""
    if os.environ.get("ABALONE_BOOK_BUILD"):
        return Path(os.environ["ABALONE_BOOK_BUILD"])
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "book"


def code_cells(notebook) -> list:
    """The code cells of an nbformat notebook."""
    return [c for c in notebook.cells if c.cell_type == "code"]


def is_book_test(nodeid: str) -> bool:
    """Tests that need the executed chapters live in the modules ``test_book_*.py``."""
    return Path(nodeid.split("::", 1)[0]).name.startswith("test_book_")
