import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test helpers such as reference.py

WORDS = ["flood", "water", "food", "fire", "smoke", "help", "need", "medical", "doctor", "road",
         "blocked", "shelter", "tent", "rain", "storm", "wind", "earthquake", "child", "missing", "aid"]
TOPICS = {  # label -> words that make a document about it
    "water": ["flood", "water", "rain"], "food": ["food", "aid", "need"], "fire": ["fire", "smoke"],
    "medical": ["medical", "doctor", "help"], "shelter": ["shelter", "tent"], "storm": ["storm", "wind"],
}


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT with a 30-word vocabulary, saved to a folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
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


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> str:
    """A CSV with text, labels ("a|b") and split columns; every label occurs in training."""
    import pandas as pd

    texts, labels = make_documents(160)
    split = ["train"] * 100 + ["validation"] * 30 + ["test"] * 30
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    pd.DataFrame({"text": texts, "labels": ["|".join(l) for l in labels], "split": split}).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def tiny_config(tiny_backbone, tiny_csv, tmp_path, monkeypatch):
    """Factory of small, fast configurations on the tiny backbone and CSV."""
    from abalone_core.config import Config

    monkeypatch.setenv("ABALONE_DATA_DIR", str(tmp_path / "cache"))

    def make(**kw):
        base = dict(
            dataset="csv", dataset_kwargs={"path": tiny_csv, "label_sep": "|", "split_column": "split"},
            backbone=tiny_backbone, max_length=16, proj_dim=16, batch_size=8, max_steps=6, queue_size=20,
            momentum=0.9, lr_backbone=1e-3, lr_head=1e-3, output_dir=str(tmp_path / "run"),
            probe={"epochs": 3, "lrs": [0.1], "weight_decays": [0.01], "heads": 2},
        )
        base.update(kw)
        return Config(**base)

    return make
