"""Methods. Importing this package registers every method (registry + LightningCLI short names)."""

from mmbench.methods.base import MissingModalityMethod
from mmbench.methods.baselines import HeMIS, LateFusion, MeanFill, ModDrop, Unimodal, ZeroFill
from mmbench.methods.modality_mean import ModalityMean
from mmbench.methods.shaspec import ShaSpec
from mmbench.methods.ul4m4 import UL4M4

__all__ = [
    "UL4M4",
    "HeMIS",
    "LateFusion",
    "MeanFill",
    "MissingModalityMethod",
    "ModDrop",
    "ModalityMean",
    "ShaSpec",
    "Unimodal",
    "ZeroFill",
]
