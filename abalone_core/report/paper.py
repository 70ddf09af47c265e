"""The paper's reported figures (Audibert, Gauffre, Amini, arXiv 2404.08720), in one place.

Micro-F1 and macro-F1 in percent, Hamming loss x 10^3, test sets, roberta-base (AAPD,
RCV1) or legal-bert (UK-LEX). Objectives are named as in :mod:`abalone_core.training.config`
(``"<contrastive>-ft"``: BCE fine-tuning that starts from that contrastive encoder).

* :data:`TABLE2`: the ablation of contrastive losses, linear evaluation, averaged over three
  seeds and the temperatures 0.07, 0.1, 0.2 (``frozen``: over the seeds only).
* :data:`TABLE3`: supervised losses, contrastive losses and fine-tuning at temperature 0.1.
* :data:`TABLE4`: silhouette and Davies-Bouldin index of 10^4 RCV1 test embeddings, half
  of the label combinations kept.
"""
from __future__ import annotations

METRICS = ("micro_f1", "macro_f1", "hamming")

TABLE2 = {
    "aapd": {"frozen": (63.86, 45.62, 28.48), "base": (72.25, 56.42, 24.40), "bqueue": (72.73, 57.92, 24.15),
             "bqproto": (73.30, 59.13, 23.69), "msc": (73.59, 60.00, 23.74)},
    "rcv1": {"frozen": (80.06, 58.42, 13.50), "base": (87.89, 73.70, 8.51), "bqueue": (87.56, 72.90, 8.72),
             "bqproto": (88.00, 74.82, 8.44), "msc": (88.40, 76.82, 8.21)},
}
TABLE3 = {
    "aapd": {"asymmetric": (72.92, 60.63, 25.30), "focal": (73.85, 59.91, 22.61), "bce": (73.89, 59.98, 22.53),
             "base": (72.51, 56.67, 24.13), "base-ft": (73.09, 58.55, 23.61), "msc": (73.84, 60.75, 23.72),
             "msc-ft": (74.00, 60.41, 23.01)},
    "rcv1": {"asymmetric": (86.63, 75.02, 10.02), "focal": (88.36, 76.69, 8.19), "bce": (88.17, 76.06, 8.17),
             "base": (87.86, 73.79, 8.48), "base-ft": (88.41, 76.08, 8.18), "msc": (88.54, 77.05, 8.12),
             "msc-ft": (88.65, 77.18, 7.99)},
    "uk-lex": {"asymmetric": (70.53, 60.58, 14.43), "focal": (73.23, 61.17, 11.54), "bce": (72.61, 60.97, 11.95),
               "base": (72.30, 59.66, 12.31), "base-ft": (72.45, 60.66, 12.23), "msc": (73.50, 62.06, 11.83),
               "msc-ft": (72.97, 61.33, 12.04)},
}
TABLE4 = {"frozen": (-0.14, 2.83), "bce": (0.15, 2.02), "base": (0.07, 2.23), "base-ft": (0.13, 2.00),
          "msc": (0.10, 2.07), "msc-ft": (0.16, 1.98)}

COST = "25 GPU-hours on one RTX A6000 for one 80-epoch contrastive run on AAPD"

NAMES = {"frozen": "L_MLM", "base": "L_Base", "bqueue": "L_BQueue", "bqproto": "L_BQProto", "msc": "L_MSC",
         "bce": "BCE", "focal": "Focal", "asymmetric": "ASL", "base-ft": "L_Base-FT", "msc-ft": "L_MSC-FT",
         "mulsupcon": "MulSupCon", "db": "DB", "tfidf-linear": "TF-IDF", "tfidf-cut": "TF-IDF (cut)"}


def scores() -> dict[tuple[str, str], dict[str, float]]:
    """(dataset, objective) -> {metric: value}: Table 3 where it has the row (temperature
    0.1, the setting of the paper's later experiments), else Table 2; silhouette and
    davies_bouldin from Table 4 on rcv1."""
    out = {(d, o): dict(zip(METRICS, v)) for d, rows in TABLE2.items() for o, v in rows.items()}
    out.update({(d, o): dict(zip(METRICS, v)) for d, rows in TABLE3.items() for o, v in rows.items()})
    for objective, (sil, dbi) in TABLE4.items():
        out.setdefault(("rcv1", objective), {}).update(silhouette=sil, davies_bouldin=dbi)
    return out


__all__ = ["METRICS", "TABLE2", "TABLE3", "TABLE4", "COST", "NAMES", "scores"]
