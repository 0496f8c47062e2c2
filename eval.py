"""Evaluate, classify with, or benchmark an AsymmNet (or any zoo, exported or ONNX model).

Examples: ``python eval.py --model-prefix run/asymmnet_small_0.5 --dataset digits``,
``python eval.py --benchmark``. ``--help`` lists the flags; see :mod:`gluon_asymmnet.evaluate`.
SIGINT/SIGTERM end it with one line and exit status 130 from its start (the package's
``__init__`` hears them before MXNet loads: :func:`gluon_asymmnet.cli.hear_signals_from_start`).
"""
import sys

if __name__ == '__main__':
    from gluon_asymmnet.evaluate import main
    sys.exit(main())
