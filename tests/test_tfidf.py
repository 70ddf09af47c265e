"""The tfidf-linear baseline (LibMultiLabel's TF-IDF + linear one-vs-rest with thresholding)."""
import numpy as np
import pytest
from scipy import sparse
from sklearn.metrics import f1_score

pytest.importorskip("libmultilabel.linear", reason="the tfidf-linear baseline needs the 'baselines' extra")

from abalone_core.evaluation.tfidf import DEFAULTS, TfidfResult, _LabelMatrix, tfidf_linear  # noqa: E402

NOISE = [f"w{i}" for i in range(200)]


def separable(n: int, n_labels: int = 5, seed: int = 0, p: float = 0.3):
    """Label j is present iff the token ``tokj`` occurs; 4-12 noise words around it."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < p).astype(np.uint8)
    texts = []
    for row in y:
        words = list(rng.choice(NOISE, size=rng.integers(4, 13)))
        words += [f"tok{j}" for j in np.flatnonzero(row)]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, y


@pytest.fixture(scope="module")
def task():
    return separable(300, seed=1), separable(100, seed=2), separable(150, seed=3)


@pytest.fixture(scope="module")
def result(task):
    (tr_x, tr_y), (va_x, va_y), (te_x, _) = task
    return tfidf_linear(tr_x, tr_y, va_x, va_y, te_x, seed=0)


def test_separable_task_is_learned(task, result):
    (_, _), (_, va_y), (_, te_y) = task
    # A separable task: anything that learns the indicator token scores near 100 %,
    # while predicting nothing scores 0 and predicting everything about 46 %.
    assert f1_score(te_y, result.test_pred, average="micro") > 0.95
    assert f1_score(te_y, result.test_pred, average="macro") > 0.95
    assert f1_score(va_y, result.validation_pred, average="micro") > 0.95


def test_shapes_dtypes_and_info(task, result):
    (tr_x, tr_y), (va_x, _), (te_x, _) = task
    assert isinstance(result, TfidfResult)
    assert result.validation_scores.shape == result.validation_pred.shape == (len(va_x), tr_y.shape[1])
    assert result.test_scores.shape == result.test_pred.shape == (len(te_x), tr_y.shape[1])
    for scores, pred in ((result.validation_scores, result.validation_pred), (result.test_scores, result.test_pred)):
        assert scores.dtype == np.float64 and np.isfinite(scores).all()
        assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
        np.testing.assert_array_equal(pred, (scores > 0).astype(np.uint8))
    info = result.info
    assert info["library"] == "libmultilabel.linear" and info["method"] == "thresholding"
    assert info["versions"]["libmultilabel"]
    vocabulary = {w for t in tr_x for w in t.split()}
    assert info["vocabulary_size"] == len(vocabulary)
    assert len(info["thresholds"]) == tr_y.shape[1] and all(isinstance(t, float) for t in info["thresholds"])
    assert info["untrained_labels"] == []
    assert info["fit_seconds"] > 0 and info["total_seconds"] >= info["fit_seconds"]
    assert f"-c {info['C']!r}" in info["liblinear_options"]


def test_C_is_chosen_on_validation(task, result):
    (_, _), (_, va_y), _ = task
    cands = result.info["candidates"]
    assert [c["C"] for c in cands] == list(DEFAULTS["Cs"])
    sums = [c["val_micro_f1"] + c["val_macro_f1"] for c in cands]
    assert result.info["C"] == cands[int(np.argmax(sums))]["C"]  # first best in grid order
    chosen = cands[int(np.argmax(sums))]
    assert chosen["val_micro_f1"] == pytest.approx(100 * f1_score(va_y, result.validation_pred, average="micro"))
    assert chosen["val_macro_f1"] == pytest.approx(100 * f1_score(va_y, result.validation_pred, average="macro"))


def test_deterministic_for_a_seed_and_global_rng_untouched(task, result):
    (tr_x, tr_y), (va_x, va_y), (te_x, _) = task
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    again = tfidf_linear(tr_x, tr_y, va_x, va_y, te_x, seed=0)
    np.testing.assert_array_equal(np.random.rand(3), expected)
    np.testing.assert_array_equal(again.validation_scores, result.validation_scores)
    np.testing.assert_array_equal(again.test_scores, result.test_scores)
    np.testing.assert_array_equal(again.test_pred, result.test_pred)
    assert again.info["thresholds"] == result.info["thresholds"] and again.info["C"] == result.info["C"]


def test_label_without_training_positives_is_never_predicted(task):
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = task
    # A sixth label, absent from training, carried by validation / test documents
    # that contain its (then unseen) token.
    extra_tr = np.zeros((len(tr_x), 1), dtype=np.uint8)
    extra_va = (np.arange(len(va_x)) % 3 == 0).astype(np.uint8)[:, None]
    extra_te = (np.arange(len(te_x)) % 3 == 0).astype(np.uint8)[:, None]
    va_x2 = [t + " tok5" if e else t for t, e in zip(va_x, extra_va[:, 0])]
    te_x2 = [t + " tok5" if e else t for t, e in zip(te_x, extra_te[:, 0])]
    res = tfidf_linear(tr_x, np.hstack([tr_y, extra_tr]), va_x2, np.hstack([va_y, extra_va]), te_x2,
                       Cs=[0.25, 1.0])
    assert res.test_pred.shape == (len(te_x), 6)
    assert not res.test_pred[:, 5].any() and not res.validation_pred[:, 5].any()
    assert res.info["untrained_labels"] == [5] and res.info["thresholds"][5] is None
    for scores in (res.validation_scores, res.test_scores):
        assert np.isfinite(scores).all() and (scores[:, 5] < scores[:, :5].min()).all()
    assert f1_score(te_y, res.test_pred[:, :5], average="micro") > 0.95  # the others still learned


def test_no_trainable_label_at_all():
    texts = ["alpha beta", "gamma delta", "beta gamma"]
    res = tfidf_linear(texts, np.zeros((3, 2)), texts[:2], np.array([[0, 1], [0, 0]]), [])
    assert res.test_pred.shape == (0, 2) and not res.validation_pred.any()
    assert res.info["untrained_labels"] == [0, 1]


@pytest.mark.parametrize("method", ["1vsrest", "cost_sensitive"])
def test_other_libmultilabel_methods(task, method):
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = task
    res = tfidf_linear(tr_x, sparse.csr_matrix(tr_y), va_x, va_y, te_x, method=method, Cs=1.0)
    assert res.info["method"] == method and res.info["C"] == 1.0
    assert all(t == 0.0 for t in res.info["thresholds"])  # no thresholding: decision at 0
    assert f1_score(te_y, res.test_pred, average="micro") > 0.95


def test_tfidf_options_reach_the_vectorizer(task):
    (tr_x, tr_y), (va_x, va_y), (te_x, _) = task
    res = tfidf_linear(tr_x, tr_y, va_x, va_y, te_x, max_features=50, ngram_range=(1, 2), Cs=[1.0])
    assert res.info["vocabulary_size"] == 50
    assert res.info["tfidf_params"] == {"ngram_range": (1, 2), "min_df": 1, "sublinear_tf": False,
                                        "max_features": 50}


def test_label_matrix_shim_counts_positives_per_label():
    y = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=float))
    shim = _LabelMatrix(y)
    np.testing.assert_array_equal(np.asarray(np.sum(shim, 2)).ravel(), [3, 1, 1])
    np.testing.assert_array_equal(np.asarray(shim.sum(axis=1)).ravel(), [2, 1, 2])
    assert shim.tocsc() is shim


@pytest.mark.parametrize("kwargs, match", [
    ({"nonsense": 1}, r"unknown option\(s\) \['nonsense'\]"),
    ({"Cs": []}, "Cs must be"),
    ({"Cs": [1.0, -2.0]}, "Cs must be"),
    ({"Cs": "1"}, "Cs must be"),
    ({"ngram_range": (2, 1)}, "ngram_range"),
    ({"max_features": 0}, "max_features"),
    ({"min_df": 0}, "min_df"),
    ({"sublinear_tf": "yes"}, "sublinear_tf"),
    ({"solver": 4}, "solver"),
    ({"bias": float("nan")}, "bias"),
    ({"tol": 0}, "tol"),
    ({"n_threads": 0}, "n_threads"),
    ({"method": "svm"}, "method"),
    ({"select": "f1"}, "select"),
    ({"seed": -1}, "seed"),
])
def test_bad_options_name_the_argument(task, kwargs, match):
    (tr_x, tr_y), (va_x, va_y), (te_x, _) = task
    with pytest.raises(ValueError, match=match):
        tfidf_linear(tr_x[:20], tr_y[:20], va_x[:5], va_y[:5], te_x[:5], **kwargs)


def test_bad_inputs_name_the_argument():
    texts = ["a doc here", "another doc", "third one"]
    y = np.array([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="train_texts must be a list of strings, not a single string"):
        tfidf_linear("one text", y[:1], texts, y, texts)
    with pytest.raises(ValueError, match="val_texts must hold strings only"):
        tfidf_linear(texts, y, ["ok", 3, None], y, texts)
    with pytest.raises(ValueError, match="train_y has 2 rows but there are 3 texts"):
        tfidf_linear(texts, y[:2], texts, y, texts)
    with pytest.raises(ValueError, match="val_y has 3 label columns, expected 2"):
        tfidf_linear(texts, y, texts, np.ones((3, 3)), texts)
    with pytest.raises(ValueError, match="train_y must hold 0/1"):
        tfidf_linear(texts, y * 2, texts, y, texts)
    with pytest.raises(ValueError, match="train_y must be a 2-D"):
        tfidf_linear(texts, y[:, 0], texts, y, texts)
    with pytest.raises(ValueError, match="val_texts is empty"):
        tfidf_linear(texts, y, [], np.zeros((0, 2)), texts)
    with pytest.raises(ValueError, match="train_texts is empty"):
        tfidf_linear([], np.zeros((0, 2)), texts, y, texts)


@pytest.mark.slow
def test_real_disaster_subset():
    from abalone_core.data import load_dataset

    ds = load_dataset("disaster").sample({"train": 2000, "validation": 500, "test": 500}, seed=0)
    tr, va, te = ds.split("train"), ds.split("validation"), ds.split("test")
    res = tfidf_linear(tr.texts, tr.labels, va.texts, va.labels, te.texts, seed=0)  # about 10-15 s
    micro = 100 * f1_score(te.labels, res.test_pred, average="micro", zero_division=0)
    macro = 100 * f1_score(te.labels, res.test_pred, average="macro", zero_division=0)
    # Floors, not the measured values: well above a model that predicts nothing (0) and
    # comfortably below what this subset gives with the default options.
    assert micro > 45, (micro, macro)
    assert macro > 25, (micro, macro)
    assert res.info["vocabulary_size"] > 3000


def test_both_tfidf_rows_score_under_every_decision_rule_and_save_their_scores(tiny_config):
    from pathlib import Path

    from abalone_core.evaluation.evaluate import read_scores
    from abalone_core.training.runs import cut_texts, run

    whole = run(tiny_config(objective="tfidf-linear", output_dir=str(Path(tiny_config().output_dir) / "whole")))
    # the cut row tokenises with the backbone's tokenizer: the real MiniLM one (no weights are loaded)
    cut_cfg = tiny_config(objective="tfidf-cut", backbone="minilm", max_length=8,
                          output_dir=str(Path(tiny_config().output_dir) / "cut"))
    cut = run(cut_cfg)
    assert whole["text"] == "whole documents" and "first 8 tokens" in cut["text"]
    for m in (whole, cut):
        for key in ("micro_f1", "macro_f1", "macro_f1_tuned", "micro_f1_label_tuned", "macro_f1_label_tuned", "map"):
            assert 0 <= m["test"][key] <= 100, key
        assert len(m["label_thresholds"]) == len(m["label_names"])
    saved = read_scores(Path(cut_cfg.output_dir) / "scores.npz")
    assert saved["test"].shape == (cut["n_documents"]["test"], len(cut["label_names"]))
    # the cut keeps at most max_length tokens, special tokens included
    from transformers import AutoTokenizer

    from abalone_core.method.model import resolve_backbone

    tok = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    long_text = "word " * 50
    (short,) = cut_texts([long_text], "minilm", 8)
    assert len(tok(short)["input_ids"]) <= 8 < len(tok(long_text)["input_ids"])
