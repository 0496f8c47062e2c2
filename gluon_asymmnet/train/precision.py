"""Training precision: float32, float16 (cast + multi-precision), or AMP (bfloat16/float16).

``--dtype float16`` casts the network to float16 and keeps float32 master
weights in the optimizer (``multi_precision``); MXNet has no float16 GEMM on
CPUs, so it needs GPUs. ``--amp`` uses ``mx.contrib.amp``: float16 with dynamic
loss scaling on GPUs, bfloat16 on CPUs (oneDNN; fast with AVX-512 BF16). AMP
must be initialised before the network is built.
"""
import collections

from mxnet import autograd

from ..errors import UsageError

__all__ = ['Precision', 'choose_precision', 'init_amp', 'init_trainer', 'backward']

#: ``dtype``: the network's parameter type; ``amp``: None, 'float16' or 'bfloat16'.
Precision = collections.namedtuple('Precision', 'dtype amp')


def choose_precision(dtype, amp, on_gpu):
    """The precision for ``--dtype``/``--amp`` on GPUs (``on_gpu``) or the CPU.

    Raises
    ------
    UsageError
        float16 on a CPU, or ``--dtype float16`` together with ``--amp``.
    """
    if dtype == 'float16' and amp:
        raise UsageError('--dtype float16 and --amp exclude each other: --amp keeps float32 '
                         'weights and casts per operator')
    if dtype == 'float16' and not on_gpu:
        raise UsageError('--dtype float16 needs GPUs (--num-gpus N): MXNet has no float16 '
                         'GEMM on CPUs; use --amp for bfloat16 on this CPU')
    if not amp:
        return Precision(dtype, None)
    return Precision('float32', 'float16' if on_gpu else 'bfloat16')


def init_amp(precision):
    """Switch AMP on (before the network is built) if ``precision.amp`` says so."""
    if precision.amp:
        from mxnet.contrib import amp
        amp.init(target_dtype=precision.amp)


def init_trainer(trainer, precision):
    """Attach AMP's dynamic loss scaler to ``trainer`` (overflowing steps are skipped)."""
    if precision.amp:
        from mxnet.contrib import amp
        amp.init_trainer(trainer)


def backward(losses, trainer, precision):
    """Back-propagate ``losses`` (one per device), scaled under AMP.

    Call it inside the ``autograd.record()`` scope of the forward pass: the
    scaled losses must be recorded too.
    """
    if precision.amp:
        from mxnet.contrib import amp
        with amp.scale_loss(losses, trainer) as scaled:
            autograd.backward(scaled)
    else:
        autograd.backward(losses)
