"""Train AsymmNet (or any model of the zoo) GluonCV style; ``--help`` lists the flags.

Example: ``python train_imagenet.py --dataset digits --model asymmnet_small_0.5``.
See :mod:`gluon_asymmnet.train` for what it writes and how it resumes.
"""
import os
import sys

# mxboard's generated protobuf code (--tensorboard) needs protobuf's pure-Python
# runtime under protobuf >= 4 (which onnx needs); it is chosen at protobuf's
# first import, which importing MXNet/GluonCV already does.
os.environ.setdefault('PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION', 'python')

from gluon_asymmnet.train import main as _main  # noqa: E402


def main(argv=None):
    """The ``asymmnet-train`` console command."""
    return _main(argv)


if __name__ == '__main__':
    sys.exit(main())
