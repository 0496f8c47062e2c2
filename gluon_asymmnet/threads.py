"""How many OpenMP threads MXNet computes with: every core, unless told otherwise.

MXNet 1.9.1 reads ``OMP_NUM_THREADS`` once, when it loads, and without it
starts half of the processors' count on x86 (it assumes two hyperthreads per
core): one thread on a 2-core VM without hyperthreads, where a 2048^3 GEMM then
runs at half the machine's speed.  So the package's ``__init__``, which every
command imports before MXNet, calls :func:`use_all_cores` first: where neither
``OMP_NUM_THREADS`` nor MXNet's own ``MXNET_OMP_MAX_THREADS`` is set, it sets
``OMP_NUM_THREADS`` to the physical cores this process may run on
(:func:`available_cores`).  A value the user sets wins, and child processes
inherit the choice.  The local launcher (``python -m gluon_asymmnet.launch``)
shares the cores between the workers it starts (:func:`worker_threads`).  A
program that imports MXNet before the package keeps MXNet's own choice.

This module imports nothing but the standard library: it must run before MXNet loads.
"""
import os

__all__ = ['THREADS_VARIABLE', 'CHOSEN_VARIABLE', 'available_cores', 'use_all_cores',
           'user_threads', 'worker_threads']

#: The variable MXNet's OpenMP reads.
THREADS_VARIABLE = 'OMP_NUM_THREADS'
#: Set beside it when the package chose the value (so that a launcher can tell a value
#: it may share out from one the user set).
CHOSEN_VARIABLE = 'ASYMMNET_CHOSEN_THREADS'
#: MXNet's own override of its thread count (read before ``OMP_NUM_THREADS``).
_MXNET_VARIABLE = 'MXNET_OMP_MAX_THREADS'


def available_cores(cpus=None, siblings=None):
    """Physical cores among the processors this process may run on.

    Parameters
    ----------
    cpus : iterable of int, optional
        Processor numbers (default: the process's CPU affinity).
    siblings : callable, optional
        ``siblings(cpu) -> str``: the processors sharing ``cpu``'s core, as
        ``/sys/devices/system/cpu/cpuN/topology/thread_siblings_list`` writes
        them (default: read there; a processor whose file cannot be read
        counts as a core of its own).

    Returns
    -------
    int
        At least 1.
    """
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, 'sched_getaffinity') else range(
            os.cpu_count() or 1)
    siblings = siblings or _thread_siblings
    cores = set()
    for cpu in cpus:
        try:
            cores.add(siblings(cpu).strip())
        except OSError:
            cores.add('cpu%d' % cpu)
    return max(1, len(cores))


def _thread_siblings(cpu):
    with open('/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list' % cpu) as listing:
        return listing.read()


def use_all_cores(environ=None, cores=None):
    """Set ``OMP_NUM_THREADS`` to every core where nobody set MXNet's thread count.

    Parameters
    ----------
    environ : dict, optional
        The environment to read and change (default: ``os.environ``).
    cores : int, optional
        Default: :func:`available_cores`.

    Returns
    -------
    int or None
        The thread count set, or None when the environment already chose one.
    """
    environ = os.environ if environ is None else environ
    if THREADS_VARIABLE in environ or _MXNET_VARIABLE in environ:
        return None
    threads = cores or available_cores()
    environ[THREADS_VARIABLE] = environ[CHOSEN_VARIABLE] = str(threads)
    return threads


def user_threads(environ):
    """``OMP_NUM_THREADS`` as the user set it, or None where unset or chosen by the package."""
    value = environ.get(THREADS_VARIABLE)
    return None if value is None or value == environ.get(CHOSEN_VARIABLE) else value


def worker_threads(environ, workers, cores=None):
    """The environment of one of ``workers`` processes sharing this machine's cores.

    Parameters
    ----------
    environ : dict
        The environment the worker would inherit.
    workers : int
        Processes computing side by side on this machine.
    cores : int, optional
        Default: :func:`available_cores`.

    Returns
    -------
    dict
        ``environ`` with ``OMP_NUM_THREADS`` = cores / workers (at least 1),
        unless the user set it or ``MXNET_OMP_MAX_THREADS``.
    """
    environ = dict(environ)
    if user_threads(environ) is None and _MXNET_VARIABLE not in environ:
        threads = str(max(1, (cores or available_cores()) // workers))
        environ[THREADS_VARIABLE] = environ[CHOSEN_VARIABLE] = threads
    return environ
