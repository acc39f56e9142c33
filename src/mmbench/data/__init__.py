"""Data modules. Importing this package registers every data module."""

from mmbench.data.audio import AudioFeatures, AudioFolder
from mmbench.data.avmnist import AVMNISTDataModule, PatternProtocol, PerClassFraction
from mmbench.data.base import MultimodalDataModule
from mmbench.data.brats import BraTSDataModule
from mmbench.data.features import FeaturesDataModule
from mmbench.data.synthetic import SyntheticDataModule

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
