"""The ``tfidf-linear`` baseline: TF-IDF features and one linear classifier per label.

This is the standard strong baseline of multi-label text classification, meant for
the supervised-baselines chapter (6) and the results chapter (8) of the book. It is
independent of the contrastive training code: texts and 0/1 label matrices in,
decision scores and 0/1 predictions out.

Library
-------
Everything is done with LibMultiLabel's linear module (``pip install libmultilabel``,
installed by the project's ``baselines`` extra; it builds ``liblinear-multicore`` and
needs no torch):

1. features: :class:`libmultilabel.linear.Preprocessor` (scikit-learn's
   ``TfidfVectorizer`` fitted on the training texts only; by default the
   library's own default TF-IDF settings);
2. training: :func:`libmultilabel.linear.train_thresholding`, the technique that
   LibMultiLabel recommends over plain one-vs-rest: one binary LIBLINEAR classifier
   per label, and a decision threshold per label chosen by a 3-fold
   cross-validation *inside the training set* that maximises micro-F1 + macro-F1
   (the "micromacro-freq" method of Lin et al., CIKM 2023, which keeps rare labels
   from being switched off). ``method="1vsrest"`` (threshold 0) and
   ``method="cost_sensitive"`` (per-label positive weight chosen by
   cross-validation) are also available;
3. hyperparameter selection: the LIBLINEAR cost ``C`` is chosen from ``Cs`` on the
   VALIDATION split only (criterion ``select``, micro-F1 + macro-F1 by default);
   every candidate is trained on the training split alone, the test split is only
   scored with the chosen model.

Conventions
-----------
- Scores are LibMultiLabel's decision values, with the label's threshold already
  applied: ``score = x.w + b - t`` so that ``pred = score > 0``. The thresholds
  ``t`` (on the raw margin ``x.w + b``) are listed in ``info["thresholds"]``.
- A label with no positive training document is not trained: it is never
  predicted (threshold ``None`` in ``info``, index in ``info["untrained_labels"]``)
  and its score is one below the lowest score of any trained label in the same
  split (so it ranks last and stays finite).
- Determinism: LibMultiLabel draws its cross-validation folds from NumPy's global
  random generator; it is seeded with ``seed`` for the duration of the call and its
  previous state restored afterwards (not thread-safe with other users of
  ``np.random``). LIBLINEAR runs single-threaded by default (``n_threads=1``).

Compatibility note: ``train_thresholding`` of libmultilabel 0.10.0 (the newest
release) computes the label order with ``np.sum(y, 2)``, which current SciPy
rejects ("axis out of range for ndim"); :class:`_LabelMatrix` passes the label
matrix in a form that reads that call as the per-label count it stands for.
"""
from __future__ import annotations

import contextlib
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.metrics import f1_score

from ..data.labels import label_matrix

__all__ = ["TfidfResult", "tfidf_linear", "DEFAULTS", "METHODS", "SELECT"]

METHODS = ("thresholding", "1vsrest", "cost_sensitive")
SELECT = ("micro+macro", "micro", "macro")
# LIBLINEAR solvers that train one binary classifier (-s 4, Crammer-Singer, is multi-class only).
_BINARY_SOLVERS = (0, 1, 2, 3, 5, 6, 7)

DEFAULTS = {
    # TF-IDF (passed to sklearn's TfidfVectorizer through LibMultiLabel's Preprocessor)
    "max_features": None,       # keep the whole training vocabulary
    "ngram_range": (1, 1),      # unigrams
    "min_df": 1,                # document-frequency cut-off (int count or float share)
    "sublinear_tf": False,      # 1 + log(tf) instead of raw term counts
    # LIBLINEAR
    "Cs": (0.0625, 0.125, 0.25, 0.5, 1.0),  # costs tried; the best on validation is kept
    "solver": 2,                # -s 2: L2-regularised L2-loss SVM, primal
    "bias": 1.0,                # -B 1: append a constant feature (bias term); <= 0 disables
    "tol": 1e-4,                # -e: stopping tolerance
    "n_threads": 1,             # -m: LIBLINEAR threads (1 keeps runs bit-for-bit repeatable)
    # LibMultiLabel
    "method": "thresholding",   # train_thresholding / train_1vsrest / train_cost_sensitive
    "select": "micro+macro",    # validation criterion for C
}


@dataclass
class TfidfResult:
    """Scores and predictions of :func:`tfidf_linear` on validation and test.

    Attributes:
        validation_scores: (N_val, L) float64 decision scores, higher = more likely;
            ``score > 0`` is a positive prediction (thresholds already applied).
        validation_pred: (N_val, L) uint8 0/1 predictions.
        test_scores: (N_test, L) float64 decision scores.
        test_pred: (N_test, L) uint8 0/1 predictions.
        info: library and versions, method, chosen C and LIBLINEAR options, the
            validation micro/macro-F1 of every candidate C, TF-IDF parameters,
            vocabulary size, per-label thresholds, untrained labels, fit seconds.
    """

    validation_scores: np.ndarray
    validation_pred: np.ndarray
    test_scores: np.ndarray
    test_pred: np.ndarray
    info: dict = field(default_factory=dict)


class _LabelMatrix(sparse.csc_matrix):
    """A CSC label matrix on which ``sum(axis=2)`` means the per-label counts (axis 0).

    Works around ``np.sum(y, 2)`` in libmultilabel 0.10.0's ``train_thresholding``
    (see the module docstring); every other operation is the plain CSC one.
    """

    def sum(self, axis=None, *args, **kwargs):
        return super().sum(0 if axis == 2 else axis, *args, **kwargs)

    def tocsc(self, copy=False):
        return self.copy() if copy else self


@contextlib.contextmanager
def _seeded_global_rng(seed: int):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _linear():
    try:
        import libmultilabel.linear as linear
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tfidf_linear needs LibMultiLabel: pip install 'abalone-core[baselines]' "
            "(or pip install libmultilabel; it builds liblinear-multicore with a C++ compiler)") from err
    return linear


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("libmultilabel", "liblinear-multicore", "scikit-learn"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:  # pragma: no cover
            out[dist] = None
    return out


# --------------------------------------------------------------------------- validation

def _check_texts(texts, name: str) -> list:
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{name} must be a list of strings, not a single string")
    try:
        texts = list(texts)
    except TypeError as err:
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}") from err
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"{name} must hold strings only; {len(bad)} item(s) are not (first positions: {bad[:5]})")
    return texts


def _check_labels(y, name: str, n: int, n_labels: int | None) -> np.ndarray:
    return label_matrix(y, name, rows=n, labels=n_labels, dtype=np.uint8, rows_of="texts")


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and np.isfinite(x)


def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid options: {sorted(DEFAULTS)}")
    opt = {**DEFAULTS, **options}

    mf = opt["max_features"]
    if mf is not None and not (isinstance(mf, numbers.Integral) and not isinstance(mf, bool) and mf >= 1):
        raise ValueError(f"max_features must be None or a positive int, got {mf!r}")
    ng = opt["ngram_range"]
    if not (isinstance(ng, (tuple, list)) and len(ng) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in ng)
            and 1 <= ng[0] <= ng[1]):
        raise ValueError(f"ngram_range must be a pair (min_n, max_n) of ints with 1 <= min_n <= max_n, got {ng!r}")
    opt["ngram_range"] = (int(ng[0]), int(ng[1]))
    md = opt["min_df"]
    if isinstance(md, bool) or not (
            (isinstance(md, numbers.Integral) and md >= 1) or (isinstance(md, float) and 0.0 < md <= 1.0)):
        raise ValueError(f"min_df must be an int >= 1 or a float in (0, 1], got {md!r}")
    if not isinstance(opt["sublinear_tf"], bool):
        raise ValueError(f"sublinear_tf must be True or False, got {opt['sublinear_tf']!r}")

    cs = opt["Cs"]
    if _is_number(cs):
        cs = (cs,)
    if isinstance(cs, (str, bytes)) or not hasattr(cs, "__iter__"):
        raise ValueError(f"Cs must be a non-empty sequence of positive numbers, got {cs!r}")
    cs = tuple(cs)
    if not cs or not all(_is_number(c) and c > 0 for c in cs):
        raise ValueError(f"Cs must be a non-empty sequence of positive numbers, got {opt['Cs']!r}")
    opt["Cs"] = tuple(float(c) for c in cs)
    if not (isinstance(opt["solver"], numbers.Integral) and not isinstance(opt["solver"], bool)
            and opt["solver"] in _BINARY_SOLVERS):
        raise ValueError(f"solver must be a LIBLINEAR binary classification solver {_BINARY_SOLVERS}, "
                         f"got {opt['solver']!r}")
    if not _is_number(opt["bias"]):
        raise ValueError(f"bias must be a finite number (<= 0 disables the bias term), got {opt['bias']!r}")
    if not (_is_number(opt["tol"]) and opt["tol"] > 0):
        raise ValueError(f"tol must be a positive number, got {opt['tol']!r}")
    nt = opt["n_threads"]
    if not (isinstance(nt, numbers.Integral) and not isinstance(nt, bool) and nt >= 1):
        raise ValueError(f"n_threads must be a positive int, got {nt!r}")
    if opt["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {opt['method']!r}")
    if opt["select"] not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {opt['select']!r}")
    return opt


# --------------------------------------------------------------------------- the baseline

def _liblinear_options(opt: dict, c: float) -> str:
    parts = [f"-s {int(opt['solver'])}", f"-c {c!r}", f"-e {float(opt['tol'])!r}", f"-m {int(opt['n_threads'])}"]
    if opt["bias"] > 0:
        parts.append(f"-B {float(opt['bias'])!r}")
    return " ".join(parts)


def _scores(model, x, trained: np.ndarray, n_labels: int) -> np.ndarray:
    """(N, L) decision values; untrained labels one below the lowest trained score."""
    out = np.zeros((x.shape[0], n_labels), dtype=np.float64)
    if trained.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            out[:, trained] = np.asarray(model.predict_values(x), dtype=np.float64)
    if (~trained).any():
        low = out[:, trained].min() if trained.any() and out.shape[0] else 0.0
        out[:, ~trained] = min(low, 0.0) - 1.0
    return out


def _f1s(y, pred) -> tuple:
    micro = 100.0 * f1_score(y, pred, average="micro", zero_division=0)
    macro = 100.0 * f1_score(y, pred, average="macro", zero_division=0)
    return float(micro), float(macro)


def tfidf_linear(train_texts, train_y, val_texts, val_y, test_texts, seed: int = 0, **options) -> TfidfResult:
    """Train the ``tfidf-linear`` baseline and score the validation and test texts.

    Args:
        train_texts, val_texts, test_texts: lists of strings (test may be empty).
        train_y, val_y: (N, L) 0/1 arrays (dense or SciPy sparse), same L.
        seed: seed of LibMultiLabel's internal cross-validation folds.
        **options: any of :data:`DEFAULTS` (TF-IDF: ``max_features``, ``ngram_range``,
            ``min_df``, ``sublinear_tf``; LIBLINEAR: ``Cs``, ``solver``, ``bias``,
            ``tol``, ``n_threads``; LibMultiLabel: ``method``; selection:
            ``select``). An unknown name or a bad value raises ``ValueError``
            naming the argument.

    Returns:
        :class:`TfidfResult`; C is chosen on validation, the test split is never
        looked at except to score it.
    """
    train_texts = _check_texts(train_texts, "train_texts")
    val_texts = _check_texts(val_texts, "val_texts")
    test_texts = _check_texts(test_texts, "test_texts")
    if not train_texts:
        raise ValueError("train_texts is empty")
    if not val_texts:
        raise ValueError("val_texts is empty; C is chosen on the validation split")
    train_y = _check_labels(train_y, "train_y", len(train_texts), None)
    n_labels = train_y.shape[1]
    if n_labels == 0:
        raise ValueError("train_y has no label columns")
    val_y = _check_labels(val_y, "val_y", len(val_texts), n_labels)
    if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    opt = _check_options(options)

    linear = _linear()
    start = time.perf_counter()
    tfidf_params = {"ngram_range": opt["ngram_range"], "min_df": opt["min_df"],
                    "sublinear_tf": opt["sublinear_tf"]}
    if opt["max_features"] is not None:
        tfidf_params["max_features"] = int(opt["max_features"])
    pre = linear.Preprocessor(tfidf_params=tfidf_params)
    trained = train_y.sum(axis=0) > 0
    cols = np.flatnonzero(trained)
    data = pre.fit_transform({
        "data_format": "txt",
        "train": {"x": train_texts, "y": [[int(j) for j in np.flatnonzero(row)] for row in train_y[:, cols]]},
        "classes": list(range(cols.size)),
    })
    x_train, y_train = data["train"]["x"], data["train"]["y"]

    def features(texts):
        if not texts:  # TfidfTransformer refuses zero documents
            return sparse.csr_matrix((0, len(pre.vectorizer.vocabulary_)), dtype=np.float64)
        return pre.transform({"data_format": "txt", "test": {"x": texts, "y": [[] for _ in texts]}})["test"]["x"]

    x_val, x_test = features(val_texts), features(test_texts)
    featurise_s = time.perf_counter() - start

    train_fn = {"thresholding": linear.train_thresholding, "1vsrest": linear.train_1vsrest,
                "cost_sensitive": linear.train_cost_sensitive}[opt["method"]]
    y_fit = _LabelMatrix(y_train) if opt["method"] == "thresholding" else y_train.tocsr()

    candidates, best = [], None
    for c in opt["Cs"]:
        t0 = time.perf_counter()
        model = None
        if cols.size:
            with _seeded_global_rng(int(seed)), warnings.catch_warnings():
                # LibMultiLabel keeps its weights as np.matrix
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                model = train_fn(y_fit, x_train, options=_liblinear_options(opt, c), verbose=False)
        seconds = time.perf_counter() - t0
        val_scores = _scores(model, x_val, trained, n_labels)
        val_pred = (val_scores > 0).astype(np.uint8)
        micro, macro = _f1s(val_y, val_pred)
        key = {"micro+macro": micro + macro, "micro": micro, "macro": macro}[opt["select"]]
        candidates.append({"C": c, "val_micro_f1": micro, "val_macro_f1": macro, "fit_seconds": seconds})
        if best is None or key > best["key"]:  # ties keep the first (smaller) C in grid order
            best = {"key": key, "C": c, "model": model, "val_scores": val_scores, "val_pred": val_pred,
                    "seconds": seconds}

    model = best["model"]
    test_scores = _scores(model, x_test, trained, n_labels)
    thresholds = [None] * n_labels
    if model is not None:
        t = np.broadcast_to(-np.asarray(model.thresholds, dtype=np.float64), (cols.size,))
        for j, v in zip(cols, t):
            thresholds[int(j)] = float(v) + 0.0  # + 0.0 turns -0.0 into 0.0
    info = {
        "library": "libmultilabel.linear",
        "versions": _versions(),
        "method": opt["method"],
        "C": best["C"],
        "liblinear_options": _liblinear_options(opt, best["C"]),
        "select": opt["select"],
        "candidates": candidates,
        "tfidf_params": dict(tfidf_params),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in opt.items()},
        "vocabulary_size": int(len(pre.vectorizer.vocabulary_)),
        "thresholds": thresholds,
        "untrained_labels": [int(j) for j in np.flatnonzero(~trained)],
        "seed": int(seed),
        "featurise_seconds": featurise_s,
        "fit_seconds": best["seconds"],
        "total_seconds": time.perf_counter() - start,
    }
    return TfidfResult(
        validation_scores=best["val_scores"],
        validation_pred=best["val_pred"],
        test_scores=test_scores,
        test_pred=(test_scores > 0).astype(np.uint8),
        info=info,
    )
