import numpy as np
import pytest
import torch

from abalone_core.data.batching import (LengthBucketSampler, TokenizedDataset, collate, length_sorted_batches,
                                        make_loader, padding_stats, tokenize)


@pytest.fixture
def tokenizer():
    """A tiny whitespace word-level fast tokenizer built in memory (no files, no Hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for w in "the cat sat on a mat dog ran far away".split():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def skewed_lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(mean=3.0, sigma=1.0, size=n).astype(int))


def test_tokenize_truncates_without_padding(tokenizer):
    ids = tokenize(["the cat sat", "the dog ran far far far away away", "zebra"], tokenizer, max_length=5)
    assert ids[0] == [2, 4, 5, 6, 3]
    assert len(ids[1]) == 5 and ids[1][0] == 2 and ids[1][-1] == 3  # truncated, specials kept
    assert ids[2] == [2, 1, 3]  # unknown word, no padding
    with pytest.raises(ValueError):
        tokenize(["a", None], tokenizer, max_length=5)


def test_tokenize_batches_agree_with_one_call(tokenizer):
    texts = ["the cat sat on a mat"] * 7 + ["dog ran"] * 5
    assert tokenize(texts, tokenizer, 6, batch_size=3) == tokenize(texts, tokenizer, 6, batch_size=100)


def test_dataset_items_and_checks():
    ds = TokenizedDataset([[1, 2, 3], [4]], np.array([[1, 0], [0, 1]]))
    item = ds[1]
    assert item["input_ids"] == [4] and item["index"] == 1
    assert item["labels"].dtype == torch.float32 and item["labels"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        TokenizedDataset([[1]], np.zeros((2, 3)))
    with pytest.raises(ValueError):
        TokenizedDataset([[1], []], np.zeros((2, 3)))


@pytest.mark.parametrize("n,b", [(103, 8), (64, 8), (5, 10)])
def test_sampler_covers_every_index_once(n, b):
    s = LengthBucketSampler(skewed_lengths(n), b, seed=3, bucket_size_multiplier=4)
    batches = list(s)
    flat = [i for x in batches for i in x]
    assert sorted(flat) == list(range(n))
    assert len(batches) == len(s)
    assert all(len(x) <= b for x in batches)


def test_sampler_drop_last_gives_full_batches():
    s = LengthBucketSampler(skewed_lengths(103), 8, seed=1, drop_last=True, bucket_size_multiplier=4)
    batches = list(s)
    assert len(batches) == len(s) == 12
    assert all(len(x) == 8 for x in batches)
    assert len(set(i for x in batches for i in x)) == 96


def test_sampler_deterministic_by_seed_and_epoch():
    lengths = skewed_lengths(500)
    a = LengthBucketSampler(lengths, 16, seed=7)
    b = LengthBucketSampler(lengths, 16, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(3)
    first = list(b)
    b.set_epoch(4)
    assert list(b) != first
    c = LengthBucketSampler(lengths, 16, seed=8)
    c.set_epoch(3)
    assert list(c) != first


def test_sampler_advances_epoch_between_passes():
    s = LengthBucketSampler(skewed_lengths(300), 16, seed=0)
    e0, e1 = list(s), list(s)
    assert e0 != e1
    s.set_epoch(0)
    assert list(s) == e0


def test_sampler_sequential_without_shuffle():
    s = LengthBucketSampler(skewed_lengths(10), 4, shuffle=False)
    assert list(s) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_bucket_batches_hold_similar_lengths():
    lengths = skewed_lengths(4000)
    s = LengthBucketSampler(lengths, 32, seed=0, bucket_size_multiplier=50)
    spread_bucket = np.mean([np.ptp(lengths[x]) for x in s.batches(0)])
    rng = np.random.default_rng(0)
    perm = rng.permutation(lengths.size)
    spread_random = np.mean([np.ptp(lengths[perm[i:i + 32]]) for i in range(0, lengths.size, 32)])
    assert spread_bucket < 0.5 * spread_random


def test_bucketing_reduces_padding_on_skewed_lengths():
    lengths = skewed_lengths(4000)
    on = padding_stats(lengths, 32, bucket=True)
    off = padding_stats(lengths, 32, bucket=False)
    assert on["tokens"] == off["tokens"] == lengths.sum()
    assert off["padded_tokens"] == off["random_padded_tokens"] and off["saved_vs_random"] == 0
    assert on["padded_tokens"] < off["padded_tokens"]
    assert on["saved_vs_random"] > 0.3
    assert 0 <= on["padding_share"] < off["padding_share"] < 1


def test_padding_stats_no_padding_for_equal_lengths():
    st = padding_stats(np.full(100, 7), 10, bucket=True)
    assert st["padded_tokens"] == 700 and st["padding_share"] == 0


def test_collate_shapes_padding_and_mask():
    items = [{"input_ids": [5, 6, 7], "labels": torch.tensor([1.0, 0.0]), "index": 4},
             {"input_ids": [8], "labels": torch.tensor([0.0, 1.0]), "index": 9}]
    out = collate(items, pad_token_id=0)
    assert out["input_ids"].dtype == torch.long and out["input_ids"].shape == (2, 3)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["attention_mask"].dtype == torch.long
    assert out["labels"].dtype == torch.float32 and out["labels"].tolist() == [[1, 0], [0, 1]]
    assert out["index"].tolist() == [4, 9]
    with pytest.raises(ValueError):
        collate([], 0)


@pytest.mark.parametrize("bucket", [True, False])
def test_make_loader_yields_every_row_once(tokenizer, bucket):
    texts = ["the cat sat on a mat " * k for k in range(1, 41)]
    ids = tokenize(texts, tokenizer, max_length=64)
    labels = np.eye(40, 3, dtype=np.uint8)
    loader = make_loader(ids, labels, batch_size=8, pad_token_id=tokenizer.pad_token_id,
                         shuffle=True, seed=0, bucket=bucket)
    seen = []
    for batch in loader:
        mask = batch["attention_mask"]
        assert batch["input_ids"].shape == mask.shape
        assert batch["input_ids"].shape[1] == mask.sum(1).max()  # padded to the longest row
        assert torch.equal(mask.sum(1), torch.tensor([len(ids[i]) for i in batch["index"]]))
        assert torch.equal(batch["labels"], torch.as_tensor(labels[batch["index"].numpy()], dtype=torch.float32))
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(40))


def test_length_sorted_batches_cover_every_row_longest_first():
    lengths = np.array([3, 9, 1, 9, 5, 2, 7])
    batches = length_sorted_batches(lengths, batch_size=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    flat = lengths[np.concatenate(batches)]
    assert (np.diff(flat) <= 0).all()  # longest first
    assert batches[0].tolist() == [1, 3, 6]  # stable among equal lengths


def test_sorted_evaluation_loader_pads_less_than_sequential_batches(tokenizer):
    texts = ["word " * k for k in np.random.default_rng(0).permutation(np.arange(1, 41))]
    ids = tokenize(texts, tokenizer, max_length=64)
    kwargs = dict(labels=np.zeros((40, 1)), batch_size=8, pad_token_id=tokenizer.pad_token_id, shuffle=False, seed=0)
    computed = {sort: sum(b["input_ids"].numel() for b in make_loader(ids, sort_by_length=sort, **kwargs))
                for sort in (False, True)}
    assert computed[True] < computed[False]
    seen = [i for b in make_loader(ids, sort_by_length=True, **kwargs) for i in b["index"].tolist()]
    assert sorted(seen) == list(range(40))
    with pytest.raises(ValueError, match="sort_by_length is for evaluation"):
        make_loader(ids, sort_by_length=True, **{**kwargs, "shuffle": True})


def wordpiece(words):
    """A fast WordPiece tokenizer (BERT's kind) over ``words``, built in memory."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def test_the_token_cache_tells_apart_tokenizers_of_one_class_and_size(tiny_config, tmp_path):
    """Two tokenizers of the same class and vocabulary size but other vocabularies (another
    MiniLM folder, a tokenizer replaced in a backbone folder) each get their own ids."""
    from abalone_core.data.batching import tokenizer_digest
    from abalone_core.data.run_data import _cached_tokens

    config = tiny_config()
    a, b = wordpiece(["alpha", "beta", "gamma"]), wordpiece(["gamma", "beta", "alpha"])
    assert type(a) is type(b) and len(a) == len(b) and a.get_vocab() != b.get_vocab()
    texts = ["Alpha beta", "gamma alpha delta", "beta"]
    ids_a = _cached_tokens(texts, a, config, "train")
    ids_b = _cached_tokens(texts, b, config, "train")
    assert ids_a == tokenize(texts, a, config.max_length) == [[2, 4, 5, 3], [2, 6, 4, 1, 3], [2, 5, 3]]
    assert ids_b == tokenize(texts, b, config.max_length) == [[2, 6, 5, 3], [2, 4, 6, 1, 3], [2, 5, 3]]
    assert len(list((tmp_path / "cache" / "tokens").glob("*.pt"))) == 2
    assert _cached_tokens(texts, wordpiece(["alpha", "beta", "gamma"]), config, "train") == ids_a  # read back
    # the digest is the tokenizer's content: not moved by the truncation a call sets, nor by the object
    assert tokenizer_digest(a) == tokenizer_digest(wordpiece(["alpha", "beta", "gamma"])) != tokenizer_digest(b)


def test_tokenize_hides_its_progress_bar_when_asked(tokenizer, capsys):
    texts = ["alpha beta"] * 50
    tokenize(texts, tokenizer, 8, batch_size=2)
    assert "tokenize" in capsys.readouterr().err  # 25 batches: a bar by default
    tokenize(texts, tokenizer, 8, batch_size=2, progress=False)
    assert capsys.readouterr().err == ""
