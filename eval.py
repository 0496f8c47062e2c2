"""Evaluate, classify with, or benchmark an AsymmNet (or any zoo, exported or ONNX model).

Examples: ``python eval.py --model-prefix run/asymmnet_small_0.5 --dataset digits``,
``python eval.py --benchmark``. ``--help`` lists the flags; see :mod:`gluon_asymmnet.evaluate`.
"""
import signal
import sys


def _stopped_while_loading(signum, frame):
    print('eval.py: interrupted while loading; nothing was read or written', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
    # Until the command installs its own handlers, SIGINT/SIGTERM end it with one line
    # (importing MXNet and GluonCV takes seconds).
    signal.signal(signal.SIGINT, _stopped_while_loading)
    signal.signal(signal.SIGTERM, _stopped_while_loading)
    from gluon_asymmnet.evaluate import main
    sys.exit(main())
