"""Experiment runner: grids of trainings, their report, the paper's ablations as presets.

``python -m gluon_asymmnet.experiments --preset digits`` (see :mod:`.cli`).
:mod:`.grid` checks a grid and lists its cells, :mod:`.presets` names the grids
of the paper's ablations, :mod:`.tasks` says what a cell trains (classification:
``train_imagenet.py``; detection: :mod:`.detection`, GluonCV's SSD on the digits),
:mod:`.runner` trains the cells as children, :mod:`.measure` counts
MACs/parameters and times batch-1 latency, and :mod:`.report` writes the tables,
figures and confidence intervals.
"""
from .cli import main

__all__ = ['main']
