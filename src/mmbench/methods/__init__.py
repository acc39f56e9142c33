"""Methods. Importing this package registers every method (registry + LightningCLI short names)."""

from mmbench.methods.base import MissingModalityMethod
from mmbench.methods.baselines import LateFusion

__all__ = ["LateFusion", "MissingModalityMethod"]
