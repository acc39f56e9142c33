"""Data modules. Importing this package registers every data module."""

from mmbench.data.audio import AudioFeatures, AudioFolder
from mmbench.data.avmnist import AVMNISTDataModule
from mmbench.data.base import MultimodalDataModule
from mmbench.data.brats import BraTSDataModule
from mmbench.data.features import FeaturesDataModule
from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import PatternProtocol, PerClassFraction  # their YAML path mmbench.data.* keeps working

__all__ = [
    "AVMNISTDataModule",
    "AudioFeatures",
    "AudioFolder",
    "BraTSDataModule",
    "FeaturesDataModule",
    "MultimodalDataModule",
    "PatternProtocol",
    "PerClassFraction",
    "SyntheticDataModule",
]
