"""Training precision: float32, float16 (cast + multi-precision), or AMP (bfloat16/float16).

``--dtype float16`` casts the network to float16 (BatchNorm keeps float32
parameters) and keeps float32 master weights in the optimizer
(``multi_precision``); MXNet has no float16 GEMM on CPUs, so it needs GPUs.
``--amp`` uses ``mx.contrib.amp``: float16 with dynamic loss scaling on GPUs,
bfloat16 on CPUs (oneDNN; fast with AVX-512 BF16). AMP must be initialised
before the network is built, and, as MXNet's AMP guide and GluonCV's scripts
do it, the trainer then updates the weights itself (``update_on_kvstore=False``)
after AMP has checked the summed gradients for overflow (:func:`make_trainer`).
"""
import collections

import numpy as np
from mxnet import autograd, gluon

from ..errors import UsageError
from ..mxnet_private import trainer_updaters

__all__ = ['Precision', 'choose_precision', 'init_amp', 'amp_patched', 'make_trainer',
           'init_trainer', 'match_optimizer_states', 'backward']

#: ``dtype``: the network's parameter type; ``amp``: None, 'float16' or 'bfloat16'.
Precision = collections.namedtuple('Precision', 'dtype amp')


def choose_precision(dtype, amp, on_gpu, kvstore='device'):
    """The precision for ``--dtype``/``--amp`` on GPUs (``on_gpu``) or the CPU.

    Raises
    ------
    UsageError
        float16 on a CPU, ``--dtype float16`` together with ``--amp``, or
        ``--amp`` with ``--kvstore dist_async`` (whose servers update the
        weights, where AMP cannot skip a step whose gradients overflowed).
    """
    if dtype == 'float16' and amp:
        raise UsageError('--dtype float16 and --amp exclude each other: --amp keeps float32 '
                         'weights and casts per operator')
    if dtype == 'float16' and not on_gpu:
        raise UsageError('--dtype float16 needs GPUs (--num-gpus N): MXNet has no float16 '
                         'GEMM on CPUs; use --amp for bfloat16 on this CPU')
    if amp and kvstore == 'dist_async':
        raise UsageError('--amp cannot train with --kvstore dist_async: its servers update '
                         'the weights, where AMP cannot skip the steps whose gradients '
                         'overflow; use dist_sync or dist_device_sync')
    if not amp:
        return Precision(dtype, None)
    return Precision('float32', 'float16' if on_gpu else 'bfloat16')


def init_amp(precision):
    """Switch AMP on (before the network is built) if ``precision.amp`` says so."""
    if precision.amp:
        from mxnet.contrib import amp
        amp.init(target_dtype=precision.amp)


def amp_patched():
    """Whether ``amp.init`` patched MXNet's operators in this process (for good: AMP has no
    undo), so that every network it runs casts to AMP's type."""
    from mxnet.contrib.amp import amp
    return amp._amp_initialized


def make_trainer(params, optimizer, optimizer_params, precision, kvstore):
    """The Gluon ``Trainer`` of ``params`` for ``precision``, as GluonCV's scripts build it.

    float16 weights get float32 master copies in the optimizer
    (``multi_precision``). Under AMP the trainer updates the weights itself
    (``update_on_kvstore=False``, MXNet's AMP guide): the kvstore only sums
    the gradients of the devices (and workers), and AMP's loss scaler (attached
    here, :func:`init_trainer`) skips the step when that sum overflowed. A
    kvstore that updated the weights would apply the overflowing step before
    AMP looked, and AMP would only look at the first device's own gradient.
    A distributed kvstore updates on the workers (``dist_sync``,
    ``dist_device_sync``) or on its servers (``dist_async``, refused with AMP
    by :func:`choose_precision`).

    Parameters
    ----------
    params : list of Parameter
        In a fixed order (saved optimizer states are matched by position).
    optimizer : str
    optimizer_params : dict
    precision : Precision
    kvstore : str or mx.kvstore.KVStore
        A kvstore type of one machine (``device``, ``local``, ``nccl``), or a
        distributed KVStore.

    Returns
    -------
    gluon.Trainer
    """
    optimizer_params = dict(optimizer_params, multi_precision=precision.dtype == 'float16')
    if isinstance(kvstore, str):
        update_on_kvstore = False if precision.amp else None   # None: MXNet's choice
    else:
        update_on_kvstore = 'async' in kvstore.type
    trainer = gluon.Trainer(params, optimizer, optimizer_params, kvstore=kvstore,
                            update_on_kvstore=update_on_kvstore)
    init_trainer(trainer, precision)
    return trainer


def init_trainer(trainer, precision):
    """Attach AMP's dynamic loss scaler to ``trainer`` (overflowing steps are skipped)."""
    if precision.amp:
        from mxnet.contrib import amp
        amp.init_trainer(trainer)


def match_optimizer_states(trainer, precision):
    """Fit the optimizer that ``trainer.load_states`` brought back to ``precision``.

    The states file holds the optimizer of the run that saved it, with its
    ``multi_precision`` and, per parameter, the momentum of a float32 weight
    or ``(float32 master weight, momentum)`` of a float16 one. A run resumed
    with another ``--dtype`` gets the states its weights need: float16 weights
    a master copy (their values in float32) beside the saved momentum, float32
    weights the momentum alone.

    Parameters
    ----------
    trainer : gluon.Trainer
        After ``load_states``; its optimizer is ``nag`` or ``sgd``.
    precision : Precision
    """
    updaters, params = trainer_updaters(trainer)
    multi_precision = precision.dtype == 'float16'
    for updater, device in updaters:
        updater.optimizer.multi_precision = multi_precision
        for index, state in list(updater.states.items()):
            weight = params[index].list_data()[device]
            has_master = isinstance(state, (tuple, list))
            needs_master = multi_precision and weight.dtype == np.float16
            if has_master and not needs_master:
                updater.states[index] = state[1]
            elif needs_master and not has_master:
                updater.states[index] = (weight.astype('float32'), state)
            updater.states_synced[index] = False   # moved to the weight's device when used


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
