"""Networks of the book, built on fastconv.layers (or any module with the book's layer classes)."""

from .convnets import DeepConvNet, SimpleConvNet

__all__ = ["SimpleConvNet", "DeepConvNet"]
