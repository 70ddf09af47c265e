"""ABALONE: balanced multi-label supervised contrastive learning (Audibert, Gauffre, Amini, 2024)."""
__version__ = "0.1.0"
