"""Evaluate, classify with, or benchmark an AsymmNet (or any zoo, exported or ONNX model).

Examples: ``python eval.py --model-prefix run/asymmnet_small_0.5 --dataset digits``,
``python eval.py --benchmark``. ``--help`` lists the flags; see :mod:`gluon_asymmnet.evaluate`.
"""
import sys

from gluon_asymmnet.evaluate import main

if __name__ == '__main__':
    sys.exit(main())
