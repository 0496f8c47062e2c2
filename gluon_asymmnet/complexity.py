"""Parameters and multiply-accumulates of a network, counted from its symbol.

MACs are counted as the paper counts MAdds: convolutions (``out_elements x
in_channels/groups x kh x kw``) and dense layers (``in x out``), per image.
Parameters are the true counts; the original release's summary tool multiplied
a k x k kernel's parameters by k instead of k^2, which is where the paper's
"5.99M" for AsymmNet-L x1.0 comes from (true count: 6.08M trainable).

The command is ``python -m gluon_asymmnet.summary``.

Equal MACs are not equal memory traffic: :func:`traffic` counts the bytes of
activations each operator of a graph reads and writes, in inference and in a
training step, with AsymmNet's feature-reuse concat materialised and without
it, the bound on what a memory-bound network can gain over another.  Counted on
the inference graph with the operators that serving runtimes fuse into a
convolution left out (``Traffic.total(fused=True)``), it is the bound of those
runtimes (ONNX Runtime, oneDNN's fused graph).
"""
import ast
import collections
import json

import numpy as np

__all__ = ['LayerStats', 'Summary', 'summary', 'OpTraffic', 'Traffic', 'traffic']

#: One operator: its name and type, output shape (CHW), parameters (all, and
#: trainable: BatchNorm running statistics are not), MACs per image, kind
#: ('pointwise', 'depthwise', 'vanilla' for layers with MACs, else ''), inputs.
LayerStats = collections.namedtuple('LayerStats',
                                    'name op shape params trainable macs kind inputs')


class Summary(collections.namedtuple('Summary', 'layers macs params trainable_params')):
    """Per-layer statistics and totals (``macs`` per image)."""

    def macs_by_kind(self):
        """MACs of pointwise (1x1 and dense), depthwise and other (vanilla) layers."""
        kinds = collections.Counter()
        for layer in self.layers:
            if layer.macs:
                kinds[layer.kind] += layer.macs
        return {kind: kinds[kind] for kind in ('pointwise', 'depthwise', 'vanilla')}

    def table(self):
        """The per-layer table as text (the original summary tool's layout)."""
        line = '_' * 118
        rows = [line, '%-48s%-14s%-11s%-10s%s' % ('Layer (type)', 'Output Shape', 'Trainable',
                                                  'MACs #', 'Previous Layer'), '=' * 118]
        for layer in self.layers:
            inputs = layer.inputs or ['']
            rows.append('%-48s%-14s%-11d%-10s%s' % (
                ('%s(%s)' % (layer.name, layer.op))[:47], 'x'.join(map(str, layer.shape)),
                layer.trainable, '%.2E' % layer.macs if layer.macs else '0', inputs[0]))
            rows.extend(' ' * 83 + name for name in inputs[1:])
            rows.append(line)
        rows.append('Total params: {:,}'.format(self.params))
        rows.append('Trainable params: {:,}'.format(self.trainable_params))
        rows.append('Non-trainable params: {:,}'.format(self.params - self.trainable_params))
        rows.append('Total MACs: {:,} ({:.2f}M)'.format(self.macs, self.macs / 1e6))
        for kind, macs in self.macs_by_kind().items():
            rows.append('MACs ({}): {:.2f}M  {:.2f}%'.format(kind, macs / 1e6,
                                                           100. * macs / max(self.macs, 1)))
        return '\n'.join(rows)


def summary(net, input_shape=(1, 3, 224, 224)):
    """Count a network's parameters and MACs.

    Parameters
    ----------
    net : HybridBlock
        An initialised (or deferred-initialisable) network.
    input_shape : tuple
        NCHW input shape; MACs are reported per image.

    Returns
    -------
    Summary
    """
    import mxnet as mx
    sym = net(mx.sym.var('data'))
    if isinstance(sym, (list, tuple)):
        sym = mx.sym.Group(list(sym))
    internals = sym.get_internals()
    arg_shapes, out_shapes, aux_shapes = internals.infer_shape(data=input_shape)
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    var_shapes = dict(zip(internals.list_arguments(), arg_shapes))
    var_shapes.update(zip(internals.list_auxiliary_states(), aux_shapes))
    nodes = json.loads(sym.tojson())['nodes']
    trainable = {p.name for p in net.collect_params().values() if p.grad_req != 'null'}

    def out_shape(node_id):
        node = nodes[node_id]
        if node['op'] == 'null':
            return var_shapes.get(node['name'], input_shape)
        return shapes[node['name'] + '_output']

    layers, total_macs, total_params, total_trainable = [], 0, 0, 0
    for node in nodes:
        if node['op'] == 'null':
            continue
        attrs = node.get('attrs', {})
        shape = shapes.get(node['name'] + '_output') or shapes[node['name'] + '_output0']
        data_inputs, params, n_trainable = [], 0, 0
        for src, _, _ in node['inputs']:
            src_node = nodes[src]
            if src_node['op'] == 'null' and src_node['name'] != 'data':
                size = int(np.prod(var_shapes[src_node['name']]))
                params += size
                n_trainable += size if src_node['name'] in trainable else 0
            else:
                data_inputs.append(src_node['name'])
        macs, kind = 0, ''
        if node['op'] == 'Convolution':
            in_channels = out_shape(node['inputs'][0][0])[1]
            kernel = ast.literal_eval(attrs['kernel'])
            groups = int(attrs.get('num_group', 1))
            macs = int(np.prod(shape[1:])) * in_channels // groups * int(np.prod(kernel))
            kind = ('depthwise' if groups > 1 and groups == in_channels else
                    'pointwise' if int(np.prod(kernel)) == 1 else 'vanilla')
        elif node['op'] == 'FullyConnected':
            macs, kind = int(np.prod(out_shape(node['inputs'][1][0]))), 'pointwise'
        total_macs += macs
        total_params += params
        total_trainable += n_trainable
        layers.append(LayerStats(node['name'], node['op'], tuple(shape[1:]), params, n_trainable,
                                 macs, kind, data_inputs))
    return Summary(layers, total_macs // input_shape[0], total_params, total_trainable)


#: One operator's activation traffic, bytes per image: forward reads and writes;
#: backward (training) reads and writes, the sum of a gradient over several consumers
#: included; ``concat``: a feature-reuse concat (removed by ``Traffic.total(concat=False)``);
#: ``fused_forward``: its forward bytes in a runtime that fuses (counted by
#: ``Traffic.total(fused=True)``): none for an operator computed inside the
#: convolution before it, the other operand's read for an addition accumulated
#: into a convolution's output, its reads and writes otherwise.
OpTraffic = collections.namedtuple('OpTraffic', 'name op forward_read forward_write '
                                                'backward_read backward_write concat '
                                                'fused_forward')

#: Operators that are views of their input (no data moved).
_VIEWS = frozenset(['Reshape', 'reshape', 'Flatten', 'flatten', 'identity', '_copy',
                    'expand_dims', 'squeeze'])
#: Operators whose backward needs only the gradient of their output.
_GRADIENT_ONLY = frozenset(['Concat', 'concat', 'elemwise_add', '_plus', '_Plus',
                            'broadcast_add', 'add_n', 'ElementWiseSum',
                            '_contrib_AdaptiveAvgPooling2D'])
#: Element-wise operators that inference runtimes fuse into the convolution that
#: produces their input (BatchNorm folds into its weights; activations run on its
#: output in registers; dropout is the identity).
_FUSED = frozenset(['BatchNorm', 'Activation', 'LeakyReLU', 'hard_sigmoid', 'relu',
                    'sigmoid', 'clip', 'Dropout'])
#: Multiplications that are fused as the second half of a hard swish ``x * hard_sigmoid(x)``.
_PRODUCTS = frozenset(['elemwise_mul', 'broadcast_mul', '_mul', '_Mul'])
#: Additions that a runtime accumulates into the output of a convolution operand.
_SUMS = frozenset(['elemwise_add', '_plus', '_Plus', 'broadcast_add'])


class Traffic(collections.namedtuple('Traffic', 'layers input_shape graph')):
    """Per-operator activation traffic of a network (:func:`traffic`); ``graph``:
    ``'training'`` or ``'inference'``, the graph counted."""

    def total(self, training=False, concat=True, fused=False):
        """Bytes of activations read and written per image.

        Parameters
        ----------
        training : bool
            A training step (forward and backward) instead of inference (forward).
        concat : bool
            With the feature-reuse concat materialised (what the graph does), or
            without it: its consumers read the parts where they are, so the
            concat's own reads and writes, and those of its backward, are gone.
        fused : bool
            As a runtime that fuses operators into the convolution before them
            (``OpTraffic.fused_forward``): inference only.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            ``training`` with ``fused``, or on an inference graph.
        """
        if training and (fused or self.graph != 'training'):
            raise ValueError('a training step is counted on the training graph, unfused')
        bytes_ = 0
        for layer in self.layers:
            if layer.concat and not concat:
                continue
            bytes_ += (layer.fused_forward if fused
                       else layer.forward_read + layer.forward_write)
            if training:
                bytes_ += layer.backward_read + layer.backward_write
        return bytes_


def traffic(net, input_shape=(1, 3, 224, 224), dtype_bytes=4, graph='training'):
    """Count the bytes of activations each operator reads and writes.

    The graph is the network's training graph on a CPU (inference runs its
    forward part), or its inference graph for ``input_shape`` (what a hybridized
    network runs and the export writes: on large maps, AsymmNet's feature reuse
    without the concat); operators computed from parameters alone (BatchNorm
    folded into a weight) are not counted.  Every operator is counted as MXNet
    runs it unfused, views (``Reshape``, ``Flatten``) free; those that inference
    runtimes fuse into a convolution are counted apart
    (``OpTraffic.fused_forward``).  An operator reads each data input once (a
    part that is concatenated twice is read twice) and writes its output.  Its backward reads
    the gradient of its output and its data inputs and writes their gradients
    (concats, additions and average pooling read no input); an output consumed
    k > 1 times has its k gradients read and their sum written.  Parameters
    (and their gradients) are not counted: per image they vanish with the batch.
    A channel concat over feature maps larger than 1x1 is the feature reuse
    (``OpTraffic.concat``).  Build AsymmNet with ``formulation='concat'`` to count
    the network rather than a CPU workaround (the identity ``clip`` after
    ``onednn_concat``'s concat in training graphs).

    Parameters
    ----------
    net : HybridBlock
        An initialised (or deferred-initialisable) network.
    input_shape : tuple
        NCHW input shape; bytes are reported per image.
    dtype_bytes : int
        Bytes of one activation (4: float32, 2: bfloat16).
    graph : {'training', 'inference'}

    Returns
    -------
    Traffic

    Raises
    ------
    ValueError
        An unknown ``graph``.
    """
    import mxnet as mx
    from .models.graphs import traced_for
    if graph not in ('training', 'inference'):
        raise ValueError("graph is 'training' or 'inference', not %r" % (graph,))
    with traced_for(mx.cpu(), input_shape, training=graph == 'training'):
        sym = net(mx.sym.var('data'))
    if isinstance(sym, (list, tuple)):
        sym = mx.sym.Group(list(sym))
    internals = sym.get_internals()
    out_shapes = internals.infer_shape(data=input_shape)[1]
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())['nodes']

    def entry_bytes(node_id, index):
        name = nodes[node_id]['name']
        if nodes[node_id]['op'] == 'null':
            shape = input_shape
        else:
            shape = shapes.get('%s_output' % name) or shapes['%s_output%d' % (name, index)]
        return int(np.prod(shape)) * dtype_bytes

    constant = set()   # parameters, and operators of parameters alone
    for node_id, node in enumerate(nodes):
        if (node['name'] != 'data' if node['op'] == 'null'
                else all(src in constant for src, _, _ in node['inputs'])):
            constant.add(node_id)

    def is_data(node_id):
        return node_id not in constant

    def needs_gradient(node_id):
        return nodes[node_id]['op'] != 'null'   # not the input image

    def fused_forward(node, read, out):
        """Forward bytes of ``node`` in a runtime that fuses (``OpTraffic.fused_forward``)."""
        inputs = [(src, index) for src, index, _ in node['inputs']]
        pairs = (inputs, inputs[::-1]) if len(inputs) == 2 else ()
        if node['op'] in _FUSED or (node['op'] in _PRODUCTS and any(
                nodes[a[0]]['op'] == 'hard_sigmoid' and tuple(nodes[a[0]]['inputs'][0][:2]) == b
                for a, b in pairs)):
            return 0
        for accumulated, other in pairs if node['op'] in _SUMS else ():
            if (nodes[accumulated[0]]['op'] == 'Convolution' and consumers[accumulated] == 1
                    and entry_bytes(*accumulated) == out):
                return entry_bytes(*other)
        return read + out

    consumers = collections.Counter((src, index) for node in nodes if node['op'] != 'null'
                                    for src, index, _ in node['inputs'] if needs_gradient(src))
    batch, layers = input_shape[0], []
    for node_id, node in enumerate(nodes):
        if node_id in constant or node['op'] == 'null':
            continue
        out = entry_bytes(node_id, 0)
        fan_out = consumers[(node_id, 0)]
        # the gradients of a shared output: read all, write their sum
        sum_read, sum_write = (fan_out * out, out) if fan_out > 1 else (0, 0)
        if node['op'] in _VIEWS:
            layers.append(OpTraffic(node['name'], node['op'], 0, 0, sum_read // batch,
                                    sum_write // batch, False, 0))
            continue
        inputs = [(src, index) for src, index, _ in node['inputs'] if is_data(src)]
        read = sum(entry_bytes(*entry) for entry in inputs)
        grads = sum(entry_bytes(*entry) for entry in inputs if needs_gradient(entry[0]))
        gradient_only = node['op'] in _GRADIENT_ONLY or (
            node['op'] == 'Pooling' and node.get('attrs', {}).get('pool_type') == 'avg')
        shape = shapes.get('%s_output' % node['name']) or ()
        concat = node['op'] in ('Concat', 'concat') and len(shape) == 4 and shape[2] * shape[3] > 1
        layers.append(OpTraffic(node['name'], node['op'], read // batch, out // batch,
                                (out + (0 if gradient_only else read) + sum_read) // batch,
                                (grads + sum_write) // batch, concat,
                                fused_forward(node, read, out) // batch))
    return Traffic(layers, tuple(input_shape), graph)
