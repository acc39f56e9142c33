"""Data modules. Importing this package registers every data module."""

from mmbench.data.avmnist import AVMNISTDataModule
from mmbench.data.base import MultimodalDataModule

__all__ = ["AVMNISTDataModule", "MultimodalDataModule"]
