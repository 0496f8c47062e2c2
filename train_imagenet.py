"""Train AsymmNet (or any model of the zoo) GluonCV style; ``--help`` lists the flags.

Example: ``python train_imagenet.py --dataset digits --model asymmnet_small_0.5``.
See :mod:`gluon_asymmnet.train` for what it writes and how it resumes.
"""
import os
import signal
import sys


def _stopped_while_loading(signum, frame):
    print('%s while loading: stopped before anything was read or written'
          % signal.Signals(signum).name, file=sys.stderr)
    sys.exit(0)


if __name__ == '__main__':
    # Until training installs its own handlers, SIGINT/SIGTERM end the process quietly
    # (importing MXNet and GluonCV takes seconds).
    signal.signal(signal.SIGINT, _stopped_while_loading)
    signal.signal(signal.SIGTERM, _stopped_while_loading)
    # mxboard's generated protobuf code (--tensorboard) needs protobuf's pure-Python
    # runtime under protobuf >= 4 (which onnx needs); it is chosen at protobuf's
    # first import, which importing MXNet/GluonCV already does.
    os.environ.setdefault('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION', 'python')
    from gluon_asymmnet.train import main
    sys.exit(main())
