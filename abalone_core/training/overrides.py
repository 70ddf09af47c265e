"""``--set KEY=VALUE``: the overrides of the command line, parsed as YAML into the settings
of a run (``abalone train``) or into a loader's arguments (``abalone stats``).

>>> parse_overrides(["objective=msc", "subset={train: 100}"])
{'objective': 'msc', 'subset': {'train': 100}}

What was typed is taken literally where YAML would read a text setting as something else
(``|`` as a block scalar, ``no`` as false); the settings are checked afterwards, by
:class:`~abalone_core.training.config.Config`.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from .config import Config, _kind

# Loader arguments (``dataset_kwargs``, ``abalone stats --set``) whose values are text: ``--set``
# takes what was typed where YAML would read it as something else ("|" as a block scalar).
STRING_ARGUMENTS = ("path", "label_sep", "text_column", "label_column", "split_column", "name", "encoding", "fmt")
_NULLS = ("null", "Null", "NULL", "~")


def parse_overrides(pairs: list[str], base: dict | None = None, loader: bool = False) -> dict[str, Any]:
    """``["lr_backbone=2e-5", "subset={train: 100}"]`` -> dict, values parsed as YAML.

    A dotted key sets one entry of a mapping (``dataset_kwargs.label_sep=|``), merged into the
    mapping of ``base`` (the settings of a ``--config`` file), which is returned updated (a copy).
    For a setting that is text (``objective``, ``mixed_precision``, a loader's ``label_sep``), a
    value that YAML would read as something else than what was typed (``|`` as an empty block
    scalar, ``no`` as false, ``,`` as a syntax error) is taken literally; a quoted value is YAML's.
    A number with a leading zero (``seed=010``, octal 8 to YAML) is refused.

    Args:
        loader: the keys are a dataset loader's arguments (``abalone stats``), not Config settings.
    """
    out = dict(base or {})
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} must look like key=value (--set objective=msc)")
        key, text = pair.split("=", 1)
        path = [part.strip() for part in key.split(".")]
        if not all(path):
            raise ValueError(f"override {pair!r} has no key before '='; write key=value" if not key.strip()
                             else f"override {pair!r}: an empty part in the key {key!r}; write e.g. "
                                  "dataset_kwargs.label_sep=|")
        value = _override_value(pair, path, text, loader)
        target = out
        for i, part in enumerate(path[:-1]):
            node = target.get(part)
            if node is None:
                node = {}
            elif not isinstance(node, dict):
                raise ValueError(f"--set {pair}: {'.'.join(path[:i + 1])} is {node!r}, not a mapping; set it "
                                 f"whole, e.g. --set {path[0]}={{...}}")
            target[part] = node = dict(node)
            target = node
        target[path[-1]] = value
    return out


def _override_value(pair: str, path: list[str], text: str, loader: bool):
    """The value of one ``--set`` pair (see :func:`parse_overrides`)."""
    import yaml

    kind, optional = None, True  # None: any YAML value
    if loader or (len(path) == 2 and path[0] == "dataset_kwargs"):
        if path[-1] in STRING_ARGUMENTS:
            kind = "str"
    elif len(path) == 1:
        f = next((f for f in fields(Config) if f.name == path[0]), None)
        if f is not None:
            kind, optional = _kind(f)
    typed = text.strip()
    quoted = len(typed) >= 2 and typed[0] == typed[-1] and typed[0] in "'\""
    try:
        value, error = yaml.safe_load(text), None
    except yaml.YAMLError as err:
        value, error = None, err
    literal = typed or text
    if kind == "str" and not quoted:
        if optional and typed in _NULLS:
            return None
        if error is not None or value is None or isinstance(value, bool) or (isinstance(value, str)
                                                                             and value != typed):
            return literal
    elif error is None and isinstance(value, str) and value != typed and not quoted:
        return literal  # "|" or ">" read as an empty block scalar, "a # b" cut at the comment
    if error is not None:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"--set {pair}: the value is not valid YAML ({problem}); quote it or fix the "
                         "brackets") from None
    if isinstance(value, int) and not isinstance(value, bool) and re.fullmatch(r"[-+]?0[0-9_]+", typed):
        decimal = int(typed.replace("_", ""), 10)
        if value != decimal:
            raise ValueError(f"--set {pair}: YAML reads a number with a leading zero as octal ({value}); write "
                             f"{'.'.join(path)}={decimal} for the decimal number (or {'.'.join(path)}={value})")
    return value


__all__ = ["STRING_ARGUMENTS", "parse_overrides"]
