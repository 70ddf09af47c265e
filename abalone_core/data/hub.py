"""Datasets on the Hugging Face Hub: any of them (``hub``) and the paper's three.

* :func:`read_hub` reads every split of a Hub dataset; :func:`load_hub` is the generic
  ``hub`` loader.
* :data:`PAPER_HUB` is the table of the paper's datasets, ``aapd``, ``rcv1`` and
  ``uk-lex``: where each lives on the Hub, how it is split and its own arguments. One
  function, :func:`load_paper`, loads any row of it; the registered loaders
  ``load_aapd``, ``load_rcv1`` and ``load_uklex`` are made from the table.

The Hub ids and column names are defaults that can be overridden (``hub_id=``,
``config=``, ``text_column=``, ``label_column=``): the Hub may hold these corpora
under other names.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from .build import as_list, assemble, binarize, label_lists, need_columns
from .dataset import MultiLabelDataset, drop_rare_columns
from .registry import register_dataset
from .splits import SPLIT_ALIASES, SPLITS, stratified_split


def _hub_error(hub_id, err) -> RuntimeError:
    return RuntimeError(
        f"could not load {hub_id!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
        "This dataset needs the Hub: on a machine with access run "
        f"`huggingface-cli download {hub_id} --repo-type dataset` (the copy lands in the HF_HOME cache, "
        "which later runs reuse offline with HF_DATASETS_OFFLINE=1), or pass hub_id= to another copy. "
        "With a local export, load_dataset('csv' or 'jsonl', path=..., text_column=..., label_column=..., "
        "split_column=...) works without the Hub.")


def _hub_label_lists(column, feature, label_sep, where):
    """Label-name lists from a Hub column: names, ClassLabel ids, or delimited strings."""
    from datasets import ClassLabel

    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return [[inner.int2str(int(i)) for i in row] for row in column], list(inner.names)
    if isinstance(feature, ClassLabel):
        return [[feature.int2str(int(i))] for i in column], list(feature.names)
    return label_lists(column, label_sep, where), None


def read_hub(hub_id, *, config=None, text_column="text", label_column="labels", label_sep=None,
             revision=None):
    """Rows of every split of a Hub dataset.

    Returns:
        (texts, label lists, label order or None, split names (N,)).
    """
    import datasets

    try:
        dd = datasets.load_dataset(hub_id, config, revision=revision)
    except Exception as err:  # network, auth, missing repo: all end the same way here
        raise _hub_error(hub_id, err) from err
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    texts, lists, splits, order = [], [], [], None
    for split_name, part in dd.items():
        key = SPLIT_ALIASES.get(split_name.lower())
        if key is None:
            raise ValueError(f"{hub_id}: unknown split {split_name!r}; expected {sorted(SPLIT_ALIASES)}")
        cols = as_list(text_column) + [label_column]
        need_columns(part.column_names, cols, f"{hub_id} [{split_name}]")
        df = part.select_columns(as_list(text_column)).to_pandas()
        texts += df.fillna("").astype(str).agg("\n".join, axis=1).str.strip().tolist()
        rows, names = _hub_label_lists(part[label_column], part.features[label_column], label_sep,
                                       lambda i, s=split_name: f"{hub_id} [{s}], row {i + 1}")
        order = names or order
        lists += rows
        splits += [key] * len(part)
    return texts, lists, order, np.array(splits, dtype=str)


@register_dataset("hub")
def load_hub(*, hub_id=None, config=None, text_column="text", label_column="labels", label_sep=None,
             revision=None, min_train_count: int = 0, split_sizes=(0.8, 0.1, 0.1), seed: int = 0,
             resplit: bool = False, name=None) -> MultiLabelDataset:
    """Any Hub dataset with a text column and a multi-label column.

    The label column may hold lists of names, lists of ids of a ClassLabel feature,
    or delimited strings (``label_sep``). The Hub's train / validation / test splits
    are kept; when the dataset has only some of them (or ``resplit=True``), all rows
    are re-split with iterative stratification (``split_sizes``, ``seed``).
    """
    if not hub_id:
        raise ValueError("load_dataset('hub', ...) needs hub_id='owner/name'")
    texts, lists, order, splits = read_hub(hub_id, config=config, text_column=text_column,
                                           label_column=label_column, label_sep=label_sep, revision=revision)
    labels, names = binarize(lists, order)
    if resplit or set(splits) != set(SPLITS):
        splits = None
    return assemble(name or hub_id, texts, labels, names, splits,
                    min_train_count=min_train_count, split_sizes=split_sizes, seed=seed)


# --------------------------------------------------------------------------- the paper's datasets

AAPD_SIZES = (42_540, 4_800, 8_500)  # Table 1 of the paper (train, validation, test)


@dataclass(frozen=True)
class PaperDataset:
    """One of the paper's datasets: its Hub source, how it is split, its own arguments.

    ``split`` is one of
    ``"pool"``: all rows re-split with iterative stratification to ``split_sizes``;
    ``"carve"``: labels with < ``min_train_count`` documents in the original training
    split dropped, the original validation rows put back into training, and a
    validation set (``validation_size``: a fraction or a count) cut from training;
    ``"keep"``: the release's train / validation / test split.
    """

    summary: str
    hub_id: str
    split: str
    options: dict = field(default_factory=dict)  # argument -> default
    config: str | None = None
    text_column: str | tuple = "text"
    label_column: str = "labels"


PAPER_HUB = {
    "aapd": PaperDataset(
        "AAPD (arXiv abstracts, 54 subjects): all rows pooled and re-split as in the paper, to the "
        "proportions 42.5k / 4.8k / 8.5k (larger validation and test than the original).",
        hub_id="pietrolesci/aapd", split="pool", options={"split_sizes": AAPD_SIZES, "seed": 0}),
    "rcv1": PaperDataset(
        "RCV1-v2 as in the paper: original train / test split, labels with >= 30 training documents, "
        "and a validation set (15 % of training, about 3.5k of 23.1k as in Table 1) cut from training.",
        hub_id="rcv1-v2", split="carve", options={"min_train_count": 30, "validation_size": 0.15, "seed": 0}),
    "uk-lex": PaperDataset(
        "UK-LEX (UK laws, 69 topics in the uk-lex69 version used by the paper), chronological split of the "
        "release kept. The release is also a JSON-lines file (uk-lex69.jsonl with title, body, labels and "
        "data_type) that load_dataset('jsonl', path=..., text_column=['title', 'body'], "
        "split_column='data_type') reads offline.",
        hub_id="kiddothe2b/uk-lex", config="uk-lex69", text_column=("title", "body"), split="keep",
        options={"min_train_count": 1}),
}
HUB_SOURCE_ARGS = ("hub_id", "config", "text_column", "label_column", "label_sep")


def load_paper(dataset: str, *, hub_id=None, config=None, text_column=None, label_column=None,
               label_sep=None, **options) -> MultiLabelDataset:
    """Load one row of :data:`PAPER_HUB`; ``options`` are that row's own arguments."""
    spec = PAPER_HUB[dataset]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(f"{dataset}: unknown argument(s) {unknown}; it takes {list(HUB_SOURCE_ARGS)} "
                        f"and {sorted(spec.options)}")
    opt = {**spec.options, **options}
    texts, lists, order, splits = read_hub(
        hub_id or spec.hub_id, config=config or spec.config,
        text_column=text_column or spec.text_column,
        label_column=label_column or spec.label_column, label_sep=label_sep)
    labels, names = binarize(lists, order)
    if spec.split == "pool":
        return assemble(dataset, texts, labels, names, None, min_train_count=1,
                        split_sizes=opt["split_sizes"], seed=opt["seed"])
    if spec.split == "carve":
        if not (splits == "train").any() or not (splits == "test").any():
            raise ValueError(f"{hub_id or spec.hub_id} must provide train and test splits, "
                             f"got {sorted(set(splits))}")
        labels, names = drop_rare_columns(labels, names, splits, opt["min_train_count"], name=dataset)
        splits = _carve_validation(labels, splits, opt["validation_size"], opt["seed"])
        return assemble(dataset, texts, labels, names, splits, min_train_count=1)
    return assemble(dataset, texts, labels, names, splits, min_train_count=opt["min_train_count"])


def _carve_validation(labels, splits, validation_size, seed) -> np.ndarray:
    """Validation rows back into training, then a stratified validation cut from training."""
    splits = splits.astype(object)  # room for "validation" in a "<U5" array
    splits[splits == "validation"] = "train"
    train = np.flatnonzero(splits == "train")
    frac = validation_size if validation_size < 1 else validation_size / train.size
    sub = stratified_split(labels[train], (1 - frac, frac, 0.0), seed)
    splits[train[sub == "validation"]] = "validation"
    return splits


def _paper_loader(dataset: str):
    """The registered loader of one row of :data:`PAPER_HUB`, with its arguments in its signature."""
    spec = PAPER_HUB[dataset]

    def loader(**kwargs) -> MultiLabelDataset:
        return load_paper(dataset, **kwargs)

    kw = inspect.Parameter.KEYWORD_ONLY
    loader.__signature__ = inspect.Signature(
        [inspect.Parameter(a, kw, default=None) for a in HUB_SOURCE_ARGS]
        + [inspect.Parameter(a, kw, default=v) for a, v in spec.options.items()],
        return_annotation=MultiLabelDataset)
    loader.__name__ = loader.__qualname__ = "load_" + dataset.replace("-", "")
    loader.__doc__ = spec.summary
    return register_dataset(dataset, loader)


load_aapd, load_rcv1, load_uklex = (_paper_loader(k) for k in ("aapd", "rcv1", "uk-lex"))
