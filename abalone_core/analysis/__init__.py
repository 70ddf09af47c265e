"""Analysis: what the chapters look at, on labels, losses and representations; nothing here
trains a model.

Modules
-------
``positives``       lack of positives in a batch and a queue; attraction and repulsion terms, the
                    weight a loss gives each label, the gradient each label receives
``clusters``        label combinations as classes, clustering scores, 2-D UMAP projections
``embeddings``      checks of embedding matrices
``balance``         who pushes and who pulls on a real batch, for a grid of beta and tau
``worked_example``  chapter 0's tables by hand
``plots``           plotly figure builders for the chapters, one colour per loss
``maps``            figures of the representations (chapter 7): scores against the share of
                    combinations kept, 2-D maps, aligned panels

The diagnostics of :mod:`.positives` and :mod:`.clusters` are importable from here:
``from abalone_core import analysis; analysis.lack_of_positives(...)``.
"""
from .clusters import clustering_scores, combination_classes, project_umap
from .positives import attraction_repulsion, gradient_mass, lack_of_positives, missing_positives, term_counts

__all__ = ["attraction_repulsion", "clustering_scores", "combination_classes", "gradient_mass", "lack_of_positives",
           "missing_positives", "project_umap", "term_counts"]
