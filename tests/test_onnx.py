"""ONNX export through mx.onnx.export_model, checked in ONNX Runtime."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import onnx
import pytest

from gluon_asymmnet.deploy.export import export_model
from gluon_asymmnet.deploy.onnx import ONNX_TOLERANCE, load_onnx
from helpers import ROOT, assert_one_line_error, randomized, run_cli


@pytest.mark.parametrize('name', ['asymmnet_large_1.0', 'asymmnet_small_0.35'])
def test_onnxruntime_matches_mxnet(tmp_path, name):
    net = randomized(name, input_size=224)
    prefix = str(tmp_path / name)
    files = export_model(net, prefix, 224, fmt='onnx')
    assert files == [prefix + '.onnx', prefix + '-batch1.onnx', prefix + '-info.json']
    x = np.random.RandomState(2).normal(size=(3, 3, 224, 224)).astype(np.float32)
    expected = net(mx.nd.array(x)).asnumpy()
    assert np.abs(expected).max() > 0.1   # logits that can differ
    session, info = load_onnx(prefix + '.onnx')
    got = session.run(None, {'data': x})[0]
    assert np.abs(got - expected).max() <= ONNX_TOLERANCE
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert info['input_shape'] == [1, 3, 224, 224] and len(info['synset']) == 1000
    single = load_onnx(prefix + '-batch1.onnx')[0]
    assert single.get_inputs()[0].shape == [1, 3, 224, 224]
    got = single.run(None, {'data': x[:1]})[0]
    assert np.abs(got - expected[:1]).max() <= ONNX_TOLERANCE
    model = onnx.load(prefix + '.onnx')
    assert [i.name for i in model.graph.input] == ['data']   # parameters are initializers
    assert len(model.graph.initializer) > 100
    # the identity Reshapes of MXNet's hard swish would make ONNX Runtime wrap
    # every hard swish in Transposes; the export drops them
    assert 'Reshape' not in {node.op_type for node in model.graph.node}
    assert sum(node.op_type == 'HardSigmoid' for node in model.graph.node) > 10
    # every convolution's weight is an initializer (the BatchNorm folded into the
    # slices of the split formulation is computed at export)
    convs = [node for node in model.graph.node if node.op_type == 'Conv']
    initializers = {init.name for init in model.graph.initializer}
    assert len(convs) > 50 and all(node.input[1] in initializers for node in convs)
    assert not {'Sqrt', 'Div', 'Sub'} & {node.op_type for node in model.graph.node}
    if name == 'asymmnet_large_1.0':
        # the file of any batch holds the graph of a batch of 32: at 224 every block
        # without the concatenated map (split: what ONNX Runtime runs fastest there,
        # issue 21; only pooled squeeze-excitation vectors are concatenated); the
        # batch-1 file the graph of batch 1, which concatenates
        assert _concat_inputs_from(model.graph) == {'GlobalAveragePool'}
        # each block's last BatchNorm, of the sum of its parts' convolutions, is
        # folded into them (ONNX Runtime would run it alone)
        producers = {out: node.op_type for node in model.graph.node for out in node.output}
        norms = [node for node in model.graph.node if node.op_type == 'BatchNormalization']
        assert not [node for node in norms if producers[node.input[0]] == 'Add']
        single = onnx.load(prefix + '-batch1.onnx').graph
        assert _concat_inputs_from(single) - {'GlobalAveragePool'}


def test_ghostnet_onnx_matches_mxnet_at_any_size(tmp_path):
    net = randomized('ghostnet_0.5', classes=10, input_size=96)
    prefix = str(tmp_path / 'ghostnet')
    export_model(net, prefix, 96, fmt='onnx')
    x = np.random.RandomState(3).normal(size=(2, 3, 96, 96)).astype(np.float32)
    expected = net(mx.nd.array(x)).asnumpy()
    assert np.abs(expected).max() > 0.1
    got = load_onnx(prefix + '.onnx')[0].run(None, {'data': x})[0]
    assert np.abs(got - expected).max() <= ONNX_TOLERANCE
    nodes = {node.op_type for node in onnx.load(prefix + '.onnx').graph.node}
    assert {'Concat', 'HardSigmoid', 'GlobalAveragePool'} <= nodes   # ghost modules, SE, pooling


def test_deploy_symbol_drops_identity_reshapes_for_onnx_only():
    from gluon_asymmnet.deploy.graph import net_symbol, deploy_symbol
    symbol = net_symbol(randomized('asymmnet_small_0.35', input_size=32))[0]
    identity = [n for n in json.loads(symbol.tojson())['nodes']
                if n['op'] == 'Reshape' and n['attrs']['shape'] == '(0, 0, 0, 0)']
    assert len(identity) > 5     # they make oneDNN's layout plain once in MXNet
    onnx_graph = json.loads(deploy_symbol(symbol, for_onnx=True).tojson())['nodes']
    assert not [n for n in onnx_graph if n['op'] == 'Reshape']
    assert len(onnx_graph) == len(json.loads(symbol.tojson())['nodes']) - len(identity)


@pytest.mark.slow
def test_eval_of_onnx_and_export_agree(tmp_path):
    from gluon_asymmnet.data import prepare_digits
    net = randomized('asymmnet_small_0.35', classes=10)
    prefix = str(tmp_path / 'digits')
    export_model(net, prefix, 32)
    export_model(net, prefix, 32, fmt='onnx')
    prepare_digits(str(tmp_path / 'data'))
    results = []
    for flag, value in (('--model-prefix', prefix), ('--onnx', prefix + '.onnx'),
                        ('--onnx', prefix + '-batch1.onnx')):   # runs batches of 32 in pieces
        status, _, err = run_cli('eval.py', flag, value, '--dataset', 'digits', '--digits-root',
                                 tmp_path / 'data', '-j', 1, '--json', tmp_path / 'r.json')
        assert status == 0, err
        results.append(json.load(open(tmp_path / 'r.json')))
    assert results[0]['top1'] == results[1]['top1'] == results[2]['top1']
    assert results[0]['confusion_matrix'] == results[1]['confusion_matrix'] \
        == results[2]['confusion_matrix']


@pytest.mark.parametrize('missing, command', [
    ('onnxruntime', 'from gluon_asymmnet.evaluate import main; '
                    'sys.exit(main(["--onnx", "x.onnx", "--image", "a.jpg"]))'),
    ('onnx', 'from gluon_asymmnet.export import main; '
             'sys.exit(main(["--model", "asymmnet_small_0.35", "--params-file", "x.params", '
             '"--format", "onnx", "--prefix", "out"]))'),
])
def test_missing_onnx_names_the_extra_in_one_line(tmp_path, missing, command):
    code = 'import sys; sys.modules[%r] = None; %s' % (missing, command)
    done = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert_one_line_error(done.returncode, done.stderr, '%s is not installed' % missing)
    assert "pip install 'gluon-asymmnet[onnx]'" in done.stderr


def test_corrupted_onnx_file_is_one_line(tmp_path):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x08\x07garbage that is not a protobuf model')
    status, _, err = run_cli('eval.py', '--onnx', bad, '--dataset', 'digits')
    assert_one_line_error(status, err, 'bad.onnx: not a valid ONNX model')


@pytest.mark.slow
def test_onnx_of_another_model_is_refused(tmp_path):
    net = randomized('asymmnet_small_0.35', classes=1000)
    export_model(net, str(tmp_path / 'imagenet'), 32, fmt='onnx')
    status, _, err = run_cli('eval.py', '--onnx', tmp_path / 'imagenet.onnx', '--dataset',
                             'digits', '--digits-root', tmp_path / 'data', '-j', 1)
    assert_one_line_error(status, err, 'has 1000 outputs but the data have 10 classes')
    status, _, err = run_cli('eval.py', '--onnx', tmp_path / 'imagenet.onnx', '--dataset',
                             'digits', '--digits-root', tmp_path / 'data', '--input-size', 64)
    assert_one_line_error(status, err, 'takes 32x32 images, not 64x64')


def test_channel_shuffle_exports_to_onnx(tmp_path):
    """The shuffle ablation (``shuffle_group=2``) exports; the export checks it in ONNX Runtime."""
    from gluon_asymmnet import get_model
    net = get_model('asymmnet_small_0.35', classes=10, shuffle_group=2)
    net.initialize(mx.init.Xavier())
    files = export_model(net, str(tmp_path / 'shuffled'), 32, fmt='onnx')
    ops = {node.op_type for node in onnx.load(files[0]).graph.node}
    assert 'Transpose' in ops   # the shuffle is in the graph
    # the shuffle needs the concatenated map: these blocks keep it
    assert _concat_inputs_from(onnx.load(files[0]).graph) - {'GlobalAveragePool'}


def _concat_inputs_from(graph):
    producer = {output: node.op_type for node in graph.node for output in node.output}
    return {producer.get(name, 'input') for node in graph.node if node.op_type == 'Concat'
            for name in node.input}


def test_small_maps_keep_the_concat_in_onnx(tmp_path):
    """At 32x32 even a batch of 32 has small maps: both ONNX files keep the concat."""
    prefix = str(tmp_path / 'net')
    export_model(randomized('asymmnet_small_0.35', classes=10), prefix, 32, fmt='onnx')
    for path in (prefix + '.onnx', prefix + '-batch1.onnx'):
        assert _concat_inputs_from(onnx.load(path).graph) - {'GlobalAveragePool', 'ReduceMean'}


def test_fold_constants_computes_operators_of_initializers_only():
    """An operator of initializers becomes an initializer; one of the input stays."""
    from onnx import TensorProto, helper, numpy_helper
    from gluon_asymmnet.deploy.onnx import fold_constants
    weight = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1)
    graph = helper.make_graph(
        [helper.make_node('Mul', ['w', 'two'], ['w2']),
         helper.make_node('Slice', ['w2', 'starts', 'ends', 'axes'], ['w_part']),
         helper.make_node('Conv', ['data', 'w_part'], ['out'], group=2)],
        'g', [helper.make_tensor_value_info('data', TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(weight, 'w'),
         numpy_helper.from_array(np.array(2., np.float32), 'two'),
         numpy_helper.from_array(np.array([2], np.int64), 'starts'),
         numpy_helper.from_array(np.array([4], np.int64), 'ends'),
         numpy_helper.from_array(np.array([0], np.int64), 'axes')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    assert fold_constants(model) == 2
    assert [node.op_type for node in model.graph.node] == ['Conv']
    inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    assert sorted(inits) == ['w_part'] and inits['w_part'].ravel().tolist() == [4., 6.]
    assert fold_constants(model) == 0


def test_fold_summed_batchnorms_keeps_the_values():
    """BatchNorm(Conv(a) + Conv(b)) becomes Conv'(a) + Conv'(b), the same function."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    from gluon_asymmnet.deploy.onnx import fold_summed_batchnorms
    rng = np.random.RandomState(0)
    arrays = dict(wa=rng.normal(size=(4, 2, 1, 1)), wb=rng.normal(size=(4, 2, 3, 3)),
                  bb=rng.normal(size=4), gamma=rng.uniform(0.5, 2, 4), beta=rng.normal(size=4),
                  mean=rng.normal(size=4), var=rng.uniform(0.5, 2, 4))
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'wa'], ['ya']),
         helper.make_node('Conv', ['x', 'wb', 'bb'], ['yb'], pads=[1, 1, 1, 1]),
         helper.make_node('Add', ['ya', 'yb'], ['sum']),
         helper.make_node('BatchNormalization', ['sum', 'gamma', 'beta', 'mean', 'var'], ['out'],
                          epsilon=1e-3)],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, 2, 5, 5])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [2, 4, 5, 5])],
        [numpy_helper.from_array(value.astype(np.float32), name)
         for name, value in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])

    def run(proto):
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=['CPUExecutionProvider'])
        return session.run(None, {'x': x})[0]
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    expected = run(model)
    assert fold_summed_batchnorms(model) == 1
    assert [node.op_type for node in model.graph.node] == ['Conv', 'Conv', 'Add']
    assert np.abs(run(model) - expected).max() < 1e-5
    assert fold_summed_batchnorms(model) == 0
