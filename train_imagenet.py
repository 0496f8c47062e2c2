"""Train AsymmNet (or any model of the zoo) GluonCV style; ``--help`` lists the flags.

Example: ``python train_imagenet.py --dataset digits --model asymmnet_small_0.5``.
See :mod:`gluon_asymmnet.train` for what it writes and how it resumes. SIGINT/SIGTERM end
it with one line and exit status 130 from its start (before MXNet loads:
:func:`gluon_asymmnet.cli.hear_signals_from_start`), after a checkpoint once it trains.
"""
import os
import sys

if __name__ == '__main__':
    # mxboard's generated protobuf code (--tensorboard) needs protobuf's pure-Python
    # runtime under protobuf >= 4 (which onnx needs); it is chosen at protobuf's
    # first import, which importing MXNet/GluonCV already does.
    os.environ.setdefault('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION', 'python')
    from gluon_asymmnet.train import main
    sys.exit(main())
