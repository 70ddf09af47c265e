"""Sentences of the book that state a number, an order or a verdict, built from the records.

A chapter's code cell passes the table it shows to one of these builders and displays the
sentence (``display(Markdown(...))``), so the words cannot drift from the numbers on the page:
two rows whose means differ by less than their seed spread are never called ordered, a rank
correlation of 0.57 is never "no trend", a share of 6 % is never "mostly".

Every builder returns Markdown text and takes plain numbers (percent points for F1, shares in
[0, 1]), so it can be tested on made-up tables.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def _listing(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


# --------------------------------------------------------------------------- convergence
def converged_runs(flags: Sequence) -> str:
    """How many trained runs of a grid converged, e.g. ``"65 of 80 trained runs converged"``.

    Args:
        flags: one value per run: True (converged), False (did not), None or NaN (nothing
            trained, or no record: L_MLM, TF-IDF), which are not counted.
    """
    known = [bool(f) for f in flags if f is not None and not (isinstance(f, float) and math.isnan(f))]
    if not known:
        return "no run records whether it converged"
    done = sum(known)
    if done == len(known):
        return f"every one of its {len(known)} trained runs converged"
    if done == 0:
        return f"none of its {len(known)} trained runs converged"
    return f"{done} of {len(known)} trained runs converged ({len(known) - done} did not)"


# --------------------------------------------------------------------------- orders
def tiers(means: Mapping[str, float], spreads: Mapping[str, float]) -> list[list[str]]:
    """Rows by decreasing mean, cut into tiers the data separate.

    Two neighbours in the order fall in one tier when their means differ by no more than the
    larger of their two spreads (seed standard deviations); a row with no spread (one seed)
    cannot be separated from anything. Rows with a NaN mean are left out.

    Returns:
        list of tiers, best first; each tier a list of row names, best first.
    """
    rows = sorted((r for r in means if _finite(means[r])), key=lambda r: -means[r])
    out: list[list[str]] = []
    for r in rows:
        if out:
            prev = out[-1][-1]
            spread = max(spreads.get(prev, math.nan), spreads.get(r, math.nan))
            if not _finite(spread) or means[prev] - means[r] <= spread:
                out[-1].append(r)
                continue
        out.append([r])
    return out


def order_sentence(means: Mapping[str, float], spreads: Mapping[str, float], what: str = "macro-F1",
                   paper: Sequence[str] | None = None, digits: int = 1) -> str:
    """The rows' order by mean, said only as far as the seed spread allows, and how it compares
    with the paper's order.

    Args:
        means: mean score per row (over seeds).
        spreads: seed standard deviation per row (NaN with one seed).
        what: the score's name in the sentence.
        paper: the same rows in the paper's order, best first (None: no comparison).
    Returns:
        e.g. "By mean macro-F1: L_MSC 48.3, L_BQProto 47.6, L_Base 47.1. L_MSC, L_BQProto and
        L_Base differ by less than their seed standard deviations, so the data do not order
        them; this neither reproduces nor contradicts the paper's order (...)."
    """
    groups = tiers(means, spreads)
    ranked = [r for t in groups for r in t]
    text = f"By mean {what}: " + ", ".join(f"{r} {means[r]:.{digits}f}" for r in ranked) + "."
    level = {r: i for i, t in enumerate(groups) for r in t}
    ties = [t for t in groups if len(t) > 1]
    if not ties:
        text += " Each row is above the next by more than the larger of their seed standard deviations."
    else:
        text += " " + "; ".join(f"{_listing(t)} differ by less than their seed standard deviations"
                                for t in ties) + ", so the data do not order " + \
            ("them" if len(ties) == 1 and len(ties[0]) == len(ranked) else "those rows among themselves") + "."
    if paper is None:
        return text
    return text + " " + paper_verdict(means, spreads, paper)


def paper_verdict(means: Mapping[str, float], spreads: Mapping[str, float], paper: Sequence[str]) -> str:
    """Whether the rows' order (:func:`tiers`) reproduces, contradicts or leaves open the paper's
    order ``paper`` (row names, best first): one sentence."""
    groups = tiers(means, spreads)
    level = {r: i for i, t in enumerate(groups) for r in t}
    paper = [r for r in paper if r in level]
    shown = " > ".join(paper)
    against = [(a, b) for i, a in enumerate(paper) for b in paper[i + 1:] if level[a] > level[b]]
    separated = [(a, b) for i, a in enumerate(paper) for b in paper[i + 1:] if level[a] != level[b]]
    if against:
        a, b = against[0]
        more = len(against) - 1
        return (f"This contradicts the paper's order ({shown}): {b} is above {a} by more than their seed spread"
                + (f", and {more} more pair{'s' if more > 1 else ''} likewise" if more else "") + ".")
    if len(separated) == len(paper) * (len(paper) - 1) // 2:
        return f"This reproduces the paper's order ({shown})."
    if not separated:
        return f"This neither reproduces nor contradicts the paper's order ({shown})."
    return (f"Where the data separate rows they agree with the paper's order ({shown}); "
            "the rest of that order is not established here.")


# --------------------------------------------------------------------------- shares and trends
def share_word(share: float) -> str:
    """A word for how often something happens, from its share in [0, 1]."""
    if share < 0.05:
        return "rarely"
    if share < 0.25:
        return "sometimes"
    if share < 0.5:
        return "often"
    if share < 0.9:
        return "mostly"
    return "almost always"


def largest_share(shares: Mapping[str, float], whole: str) -> str:
    """Which part takes the most of ``whole``, e.g. "head keys carry 75 % of the denominator's
    weight and tail keys 6 %: it comes mostly from the head".

    Args:
        shares: ``{part name: share in [0, 1]}`` (e.g. ``head``, ``medium``, ``tail``).
        whole: what is shared, e.g. "L_BQueue's denominator weight".
    """
    ranked = sorted(shares, key=lambda k: -shares[k])
    top, low = ranked[0], ranked[-1]
    how = "mostly" if shares[top] > 0.5 else "more than from any other part"
    return (f"{top} keys carry {shares[top]:.0%} of {whole} and {low} keys {shares[low]:.0%}: "
            f"it comes {how} from the {top}")


def trend_phrase(rho: float) -> str:
    """How a quantity follows a label's frequency, from a rank correlation ``rho``:
    "does not follow" only for |rho| < 0.1."""
    if not _finite(rho):
        return "cannot be compared with a label's frequency (too few labels)"
    size = abs(rho)
    if size < 0.1:
        return f"does not follow a label's frequency (Spearman {rho:.2f})"
    strength = "weakly" if size < 0.3 else "moderately" if size < 0.7 else "strongly"
    sense = "rises" if rho > 0 else "falls"
    return f"{sense} {strength} with a label's frequency (Spearman {rho:.2f})"


def alone_sentence(shares: Mapping[str, float], keys: int, group: str = "tail") -> str:
    """How often a label of ``group`` finds no other key among ``keys`` random documents, per
    dataset: e.g. "among 256 random documents a FOLDOC tail label is often left without another
    document carrying it (42% of its pairs), a disaster tail label rarely (3%)".

    Args:
        shares: ``{dataset: share of the group's (anchor, label) pairs without a positive}``.
    """
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    (name, first), rest = ranked[0], ranked[1:]
    text = (f"among {keys} random documents a {name} {group} label is {share_word(first)} left without another "
            f"document carrying it ({first:.0%} of its pairs)")
    return text + "".join(f", a {n} {group} label {share_word(v)} ({v:.0%})" for n, v in rest)


# --------------------------------------------------------------------------- thresholds
def lead_sentence(first: str, second: str, at_half: tuple[float, float], tuned: tuple[float, float],
                  spread: float, dataset: str, what: str = "macro-F1") -> str:
    """What becomes of ``first``'s lead over ``second`` when the threshold is tuned.

    Args:
        at_half: (first, second) mean scores at the threshold 0.5.
        tuned: (first, second) mean scores at the global threshold tuned on validation.
        spread: the larger seed standard deviation of the rows (points).
    """
    lead, after = at_half[0] - at_half[1], tuned[0] - tuned[1]

    def state(d):
        if abs(d) <= spread:
            return "within the seed spread"
        return "a lead" if d > 0 else "behind"

    before = state(lead)
    now = state(after)
    head = (f"On {dataset}, {first} is {lead:+.1f} {what} points from {second} at the threshold 0.5 and "
            f"{after:+.1f} at the tuned threshold (seed spread {spread:.1f})")
    if before == "a lead" and now == "within the seed spread":
        return head + ": its lead at 0.5 disappears once each row gets its tuned threshold."
    if before == "a lead" and now == "a lead":
        return head + ": its lead holds at the tuned threshold."
    if before == "a lead" and now == "behind":
        return head + f": at the tuned threshold {second} is ahead."
    if before == "within the seed spread" and now == "within the seed spread":
        return head + ": within the seed spread at both thresholds."
    if now == "a lead":
        return head + f": {first} leads only at the tuned threshold."
    return head + f": {second} is ahead" + (" at both thresholds." if before == "behind" else " at the tuned threshold.")


def asl_sentence(gamma_pos: float, gamma_neg: float, margin: float) -> str:
    """ASL's settings as the book uses them (pass the :class:`~abalone_core.training.config.Config` fields)."""
    return (f"ASL here uses γ+ = {gamma_pos:g}, γ− = {gamma_neg:g} and the probability margin m = {margin:g} "
            f"(`asl_gamma_pos`, `asl_gamma_neg`, `asl_margin` in `abalone_core/training/config.py`): every negative "
            f"whose probability is below {margin:g} contributes exactly zero loss and zero gradient")


__all__ = ["converged_runs", "tiers", "order_sentence", "paper_verdict", "share_word", "largest_share", "trend_phrase",
           "alone_sentence", "lead_sentence", "asl_sentence"]
