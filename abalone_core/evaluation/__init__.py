"""Evaluation: the linear evaluation of an encoder, its decision rules and the scores.

Modules
-------
``evaluate``   embeddings, probabilities and scores of a run in the paper's units
``probe``      the paper's linear evaluation: all labels x grid x heads trained at once
``metrics``    F1 at 0.5 and at tuned thresholds, P@k, nDCG@k, PSP@k, mAP, head/medium/tail groups
``tfidf``      the TF-IDF + linear classifiers baseline (LibMultiLabel)
``per_label``  support per split and per-label tables
"""
