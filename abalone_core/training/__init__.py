"""Training: the configuration, the run lifecycle and its folder, the trainer and the rules a run
follows.

Modules
-------
``config``       the validated configuration object (YAML/JSON in and out)
``overrides``    ``--set KEY=VALUE`` of the command line, parsed into settings
``runs``         the run lifecycle (:func:`runs.run`): what may resume, TF-IDF rows, ``metrics.json``
``run_folder``   a run's folder: its files, its lock, the readers, what a restore keeps
``train``        the contrastive, supervised and fine-tuning loops (``Trainer``), checkpoints, resume
``convergence``  the convergence rule every run records, early stopping
``devices``      seeding, deterministic kernels, devices and mixed precision
``encoders``     a run's encoder: backbone checks, frozen-layer cache, saved weights read back
``layer_cache``  the frozen bottom layers' output, computed once per document and cached on disk
``provenance``   hardware, versions and git state of a run
``timing``       optimiser steps timed on the reader's device, and how long a chapter's runs take
"""
