"""Which graph a network builds: for a device, an input shape and a mode.

A network of the package computes the same function in several graphs; which
one a trace gives depends on three facts, the *graph plan*:

``ctx``
    The device (a GPU runs the plain channel concat, a CPU oneDNN's).
``input_shape``
    The shape of the network's input (variable ``data``), or None: on a CPU,
    inference computes the feature reuse of large maps without the concat
    (:mod:`~gluon_asymmnet.models.feature_reuse`), which only pays above a
    size.
``training``
    Whether the graph may be differentiated or run in training mode: only an
    inference graph may fold BatchNorm (``split``) or use the operators that
    oneDNN cannot differentiate fast (:mod:`~gluon_asymmnet.models.layers`).

Operators issued on NDArrays (imperative calls) follow their input: its device
and shape, and training under ``autograd.record()`` or ``autograd.train_mode()``.
A symbolic trace inside :func:`traced_for` follows that plan.  Any other symbolic
trace (``net(mx.sym.var('data'))``, GluonCV's ``export_block``,
``FeatureExpander``/``SSD``/``YOLOV3``, a block of your own around a network)
gets the *universal* graph, on ``mx.current_context()``: the training graph,
which runs forward and backward with oneDNN and converts to ONNX.

A hybridized network (:class:`GraphPerInput`) runs, for each call, the graph a
trace with that call's plan gives, so its speed at a batch size never depends on
the batches it ran before; ``export`` writes the inference graph of the latest
call's input shape.
"""
import collections
import contextlib
import re
import threading
import warnings

import mxnet as mx
from mxnet import autograd

__all__ = ['GraphPlan', 'traced_for', 'graph_plan', 'graph_shape', 'is_training_graph',
           'graph_key', 'GraphPerInput']

#: Device, shape of the input ``data`` (None: unknown) and mode of a graph.
GraphPlan = collections.namedtuple('GraphPlan', 'ctx input_shape training')

_STATE = threading.local()


@contextlib.contextmanager
def traced_for(ctx, input_shape=None, training=False):
    """Trace blocks symbolically as the graph of this plan (see :class:`GraphPlan`).

    What hybridized networks, ``export`` and the deploy functions use; a symbolic
    trace outside it gets the universal (trainable, exportable) graph.

    Parameters
    ----------
    ctx : mx.Context
    input_shape : tuple, optional
        Shape of the network's input, the variable ``data``.
    training : bool, default False
    """
    previous = getattr(_STATE, 'plan', None)
    _STATE.plan = GraphPlan(ctx, None if input_shape is None else tuple(input_shape),
                            training)
    try:
        yield
    finally:
        _STATE.plan = previous


def _now_training():
    return autograd.is_recording() or autograd.is_training()


def graph_plan(F, x):
    """The :class:`GraphPlan` of operators issued now on ``x`` (NDArray or Symbol)."""
    if F is mx.nd:
        return GraphPlan(x.context, x.shape, _now_training())
    plan = getattr(_STATE, 'plan', None)
    return plan if plan is not None else GraphPlan(mx.current_context(), None, True)


def is_training_graph(F, x):
    """True when the operators issued now on ``x`` may be differentiated or run in training mode."""
    return graph_plan(F, x).training


def graph_shape(F, x):
    """The shape of ``x``, or None where a traced graph's input shape is unknown."""
    if F is mx.nd:
        return x.shape
    input_shape = graph_plan(F, x).input_shape
    if input_shape is None:
        return None
    shapes = x.infer_shape_partial(data=input_shape)[1]
    return shapes[0] if shapes and shapes[0] and all(shapes[0]) else None


def graph_key(symbol):
    """``symbol``'s JSON without the versions of its inputs (which count the
    mutations of a variable and differ between two traces of one graph): equal
    for equal graphs."""
    return re.sub(r'\[(\d+), (\d+), \d+\]', r'[\1, \2]', symbol.tojson())


class GraphPerInput(object):
    """Mixin for a network (listed before ``HybridBlock``): hybridized, each call
    runs the graph of its own plan.

    A plain hybridized ``HybridBlock`` traces one graph at its first call and runs
    it for every later one.  With this mixin a call with NDArray ``x`` runs the
    graph traced inside :func:`traced_for` with ``x``'s device, shape and mode (a
    ``SymbolBlock`` sharing the network's parameters, hybridized with the
    network's flags); plans whose traces are identical share one graph.  Batch 32
    after batch 1 thus runs what batch 32 runs first, and training calls the
    training graph.  Symbolic traces of the network are unchanged (the
    universal graph, see :mod:`~gluon_asymmnet.models.graphs`).  Only public
    ``HybridBlock`` methods are overridden.
    """

    def hybridize(self, active=True, **kwargs):
        """``HybridBlock.hybridize``; forgets the graphs built so far."""
        super().hybridize(active, **kwargs)
        self._planned = _PlannedGraphs(kwargs) if active else None

    def cast(self, dtype):
        """``HybridBlock.cast``; forgets the graphs built so far."""
        super().cast(dtype)
        if getattr(self, '_planned', None) is not None:
            self._planned = _PlannedGraphs(self._planned.flags)

    def forward(self, x, *args):
        planned = getattr(self, '_planned', None)
        if args or planned is None or not isinstance(x, mx.nd.NDArray):
            return super().forward(x, *args)
        planned.latest = graph_plan(mx.nd, x)
        out = self.graph_for(planned.latest)(x)
        return tuple(out) if isinstance(out, list) else out

    @property
    def latest_plan(self):
        """The :class:`GraphPlan` of the latest call since ``hybridize`` (None if none)."""
        return getattr(getattr(self, '_planned', None), 'latest', None)

    def planned_symbol(self, plan):
        """The symbol a trace with ``plan`` (a :class:`GraphPlan`) gives (outputs grouped)."""
        with traced_for(*plan):   # as HybridBlock traces its graph: the network's hooks stay out
            out = self.forward(mx.sym.var('data'))
        return mx.sym.Group(list(out)) if isinstance(out, (list, tuple)) else out

    def graph_for(self, plan):
        """The hybridized ``SymbolBlock`` that runs the calls of ``plan``.

        Parameters
        ----------
        plan : GraphPlan

        Raises
        ------
        RuntimeError
            The network is not hybridized.
        """
        planned = getattr(self, '_planned', None)
        if planned is None:
            raise RuntimeError('%s is not hybridized' % type(self).__name__)
        block = planned.by_plan.get(plan)
        if block is None:
            symbol = self.planned_symbol(plan)
            key = graph_key(symbol)
            block = planned.by_graph.get(key)
            if block is None:
                with warnings.catch_warnings():   # types are known at the first call
                    warnings.filterwarnings('ignore', message='Cannot decide type')
                    outputs = [symbol[i] for i in range(len(symbol.list_outputs()))]
                    block = mx.gluon.SymbolBlock(outputs, mx.sym.var('data'),
                                                 params=self.collect_params())
                block.hybridize(**planned.flags)
                planned.by_graph[key] = block
            planned.by_plan[plan] = block
        return block

    def export(self, path, epoch=0, remove_amp_cast=True):
        """Save the inference graph of the latest call's input (device, shape) and
        the parameters it uses, as ``HybridBlock.export`` does (inside
        :func:`traced_for`: the graph of that plan).

        Raises
        ------
        RuntimeError
            The network is not hybridized or has not been called since.
        """
        latest = self.latest_plan
        if latest is None:
            raise RuntimeError('Please first call block.hybridize() and then run forward with '
                               'this block at least once before calling export.')
        plan = getattr(_STATE, 'plan', None) or latest._replace(training=False)
        symbol = self.planned_symbol(plan)
        symbol.save('%s-symbol.json' % path, remove_amp_cast=remove_amp_cast)
        args, aux = set(symbol.list_arguments()), set(symbol.list_auxiliary_states())
        saved = {}
        for param in self.collect_params().values():
            kind = 'arg' if param.name in args else 'aux' if param.name in aux else None
            if kind:
                saved['%s:%s' % (kind, param.name)] = param.data(latest.ctx).copyto(mx.cpu())
        mx.nd.save('%s-%04d.params' % (path, epoch), saved)


class _PlannedGraphs(object):
    """A hybridized network's graphs: by symbol JSON and by plan; its latest plan."""

    def __init__(self, flags):
        self.flags = dict(flags)
        self.by_graph, self.by_plan, self.latest = {}, {}, None
