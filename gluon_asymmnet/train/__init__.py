"""Training: ``train_imagenet.py``'s arguments, loop, checkpoints, precision and outputs.

``main(argv)`` is the command (``train_imagenet.py``, ``asymmnet-train``).
"""
from .main import main

__all__ = ['main']
