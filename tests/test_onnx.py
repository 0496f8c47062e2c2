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


def test_the_feature_reuse_without_the_concatenated_map_exports_to_onnx(tmp_path):
    """``formulation='split'`` (no concatenated map: what ONNX Runtime may run faster,
    issue 21) converts, and the export's check in ONNX Runtime holds."""
    net = randomized('asymmnet_small_0.35', classes=10, input_size=64)
    for block in net.features:
        if hasattr(block, 'formulation'):
            block.formulation = 'split'
    prefix = str(tmp_path / 'split')
    export_model(net, prefix, 64, fmt='onnx')
    x = np.random.RandomState(4).normal(size=(2, 3, 64, 64)).astype(np.float32)
    expected = net(mx.nd.array(x)).asnumpy()
    got = load_onnx(prefix + '.onnx')[0].run(None, {'data': x})[0]
    assert np.abs(got - expected).max() <= ONNX_TOLERANCE
    graph = onnx.load(prefix + '.onnx').graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    concats = [node for node in graph.node if node.op_type == 'Concat']
    # only the pooled squeeze-excitation vectors are concatenated
    assert concats and all(producer[name] in ('GlobalAveragePool', 'ReduceMean')
                           for node in concats for name in node.input)
