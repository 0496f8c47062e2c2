"""The devices of a training: the CPU, or this worker's GPUs.

``--num-gpus N`` takes GPUs 0..N-1. Workers that ``python -m
gluon_asymmnet.launch`` starts on one machine (``--launcher local``) find their
index among that machine's workers in :data:`LOCAL_RANK` and their number in
:data:`LOCAL_WORKERS`: worker ``i`` takes GPUs ``i*N .. i*N+N-1``, so that no
two share a GPU.
"""
import os

import mxnet as mx

from ..errors import UsageError

__all__ = ['LOCAL_RANK', 'LOCAL_WORKERS', 'training_devices']

#: Environment variables of a worker started by the local launcher: its index
#: among the workers on this machine (0, 1, ...), and their number.
LOCAL_RANK = 'ASYMMNET_LOCAL_RANK'
LOCAL_WORKERS = 'ASYMMNET_LOCAL_WORKERS'


def training_devices(num_gpus, kvstore, visible, environ=None):
    """The contexts ``train_imagenet.py --num-gpus num_gpus --kvstore kvstore`` trains on.

    Parameters
    ----------
    num_gpus : int
        GPUs per worker (0: the CPU).
    kvstore : str
        The ``--kvstore`` type.
    visible : int
        The GPUs MXNet sees (``mx.context.num_gpus()``).
    environ : dict, optional
        Where :data:`LOCAL_RANK` and :data:`LOCAL_WORKERS` are read (default:
        ``os.environ``).

    Returns
    -------
    list of mx.Context

    Raises
    ------
    UsageError
        More GPUs than MXNet sees (for all workers of this machine together),
        or ``--kvstore nccl`` without GPUs.
    """
    environ = os.environ if environ is None else environ
    if kvstore == 'nccl' and num_gpus == 0:
        raise UsageError('--kvstore nccl sums gradients between GPUs: give --num-gpus N')
    rank, workers = int(environ.get(LOCAL_RANK, 0)), int(environ.get(LOCAL_WORKERS, 1))
    if num_gpus * workers > visible:
        if workers == 1:
            raise UsageError('--num-gpus %d, but MXNet sees %d GPU(s) here' % (num_gpus, visible))
        raise UsageError('--num-gpus %d for each of the %d workers on this machine needs %d '
                         'GPUs, but MXNet sees %d: give --num-gpus %d or start fewer workers'
                         % (num_gpus, workers, num_gpus * workers, visible, visible // workers))
    if num_gpus == 0:
        return [mx.cpu()]
    return [mx.gpu(rank * num_gpus + i) for i in range(num_gpus)]
