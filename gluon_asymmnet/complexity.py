"""Parameters and multiply-accumulates of a network, counted from its symbol.

MACs are counted as the paper counts MAdds: convolutions (``out_elements x
in_channels/groups x kh x kw``) and dense layers (``in x out``), per image.
Parameters are the true counts; the original release's summary tool multiplied
a k x k kernel's parameters by k instead of k^2, which is where the paper's
"5.99M" for AsymmNet-L x1.0 comes from (true count: 6.08M trainable).

The command is ``python -m gluon_asymmnet.summary``.
"""
import ast
import collections
import json

import numpy as np

__all__ = ['LayerStats', 'Summary', 'summary']

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
