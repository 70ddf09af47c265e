"""ABALONE: balanced multi-label supervised contrastive learning (Audibert, Gauffre, Amini, 2024)."""
import warnings

# tqdm.auto, which several modules import, warns in a notebook without ipywidgets; the chapters
# pass progress=False, so the warning (and the file path it prints) says nothing to a reader.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
