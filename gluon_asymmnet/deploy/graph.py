"""Deploy graphs: the symbol of a network as it is exported, served and quantized.

Graphs are traced inside :func:`gluon_asymmnet.models.layers.inference_graph`
(plain 4-D ``Concat``, even for a caller inside ``trainable_graph()``), then
:func:`deploy_symbol` removes ``amp_multicast`` (an identity in float32 that
ONNX lacks) and turns any 5-D training concat
(``expand_dims``, ``Concat``, ``Reshape(0, 0, -3, -2)``, as in a graph
exported by a training run) into a plain ``Concat``: neither ONNX nor the INT8
quantizer accepts those, and the values are identical.
"""
import json
import warnings

import mxnet as mx

from ..models.layers import inference_graph

__all__ = ['deploy_symbol', 'net_symbol', 'symbol_block']


def _is_concat_view(nodes, node):
    """A ``Reshape(0, 0, -3, -2)`` of a ``Concat`` of ``expand_dims(axis=2)`` parts."""
    if node['op'] != 'Reshape' or node['attrs'].get('shape') != '(0, 0, -3, -2)':
        return False
    concat = nodes[node['inputs'][0][0]]
    return concat['op'] == 'Concat' and all(
        nodes[i]['op'] == 'expand_dims' and nodes[i]['attrs'].get('axis') == '2'
        for i, _, _ in concat['inputs'])


def deploy_symbol(symbol, for_onnx=False):
    """``symbol`` with the training-only 5-D channel concats made plain 4-D ``Concat`` s.

    Removes ``amp_multicast`` (an identity in float32) and replaces each
    ``Reshape(Concat(expand_dims(x_i, axis=2)), (0, 0, -3, -2))`` by
    ``Concat(x_i, dim=1)``; anything else is left as it is.

    Parameters
    ----------
    symbol : mx.sym.Symbol
    for_onnx : bool
        Also drop the identity ``Reshape`` s (shape ``(0, 0, 0, 0)``) that make
        oneDNN's layout plain once before hard swish in MXNet: in ONNX Runtime
        they stop the layout optimiser, which then wraps every hard swish in
        ``Transpose`` s (58 in the INT8 AsymmNet-L graph).

    Returns
    -------
    mx.sym.Symbol
    """
    graph = json.loads(symbol.tojson())
    nodes = graph['nodes']
    redirect = {}   # (node, output) -> (node, output)
    for index, node in enumerate(nodes):
        if node['op'] == 'amp_multicast':
            for output, source in enumerate(node['inputs']):
                redirect[(index, output)] = tuple(source[:2])
        elif _is_concat_view(nodes, node):
            concat_index = node['inputs'][0][0]
            concat = nodes[concat_index]
            concat['inputs'] = [nodes[i]['inputs'][0] for i, _, _ in concat['inputs']]
            redirect[(index, 0)] = (concat_index, 0)
        elif for_onnx and _is_identity_reshape(node):
            redirect[(index, 0)] = tuple(node['inputs'][0][:2])

    def follow(entry):
        key = tuple(entry[:2])
        while key in redirect:
            key = redirect[key]
        return [key[0], key[1], 0]

    for node in nodes:
        node['inputs'] = [follow(entry) for entry in node['inputs']]
    graph['heads'] = [follow(entry) for entry in graph['heads']]
    # loading keeps only what the heads reach
    return mx.sym.load_json(mx.sym.load_json(json.dumps(graph)).tojson())


def _is_identity_reshape(node):
    if node['op'] != 'Reshape':
        return False
    shape = node.get('attrs', {}).get('shape', '').strip('()[] ').replace(' ', '')
    return bool(shape) and all(dim == '0' for dim in shape.split(','))


def symbol_block(symbol, arg_params, aux_params, ctx=mx.cpu()):
    """A ``SymbolBlock`` of ``symbol`` with these parameter values."""
    with warnings.catch_warnings():   # the parameters' types are known once loaded
        warnings.filterwarnings('ignore', message='Cannot decide type')
        block = mx.gluon.SymbolBlock(symbol, mx.sym.var('data'))
    block.collect_params().load_dict(dict(arg_params, **aux_params), ctx=ctx,
                                     ignore_extra=True)
    return block


def net_symbol(net):
    """``(deploy symbol, arg_params, aux_params)`` of an initialised HybridBlock."""
    with inference_graph():
        symbol = deploy_symbol(net(mx.sym.var('data')))
    params = {param.name: param.data() for param in net.collect_params().values()}
    args = {name: params[name] for name in symbol.list_arguments() if name in params}
    aux = {name: params[name] for name in symbol.list_auxiliary_states()}
    return symbol, args, aux
