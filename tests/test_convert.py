"""The converter of the released AsymmNet-L weights into the local model store.

The released file (``0.7542-imagenet-modifiedv3-358-best.params``) is not
available offline, so the test synthesizes one: its names and shapes come from
the network printed at the top of the released training log (the original
``train.py`` saved it with ``save_parameters``, i.e. structural names such as
``features.4.conv1.conv.weight``), parsed here independently of the package.
"""
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import gluon_asymmnet
from gluon_asymmnet.convert import convert_params
from gluon_asymmnet.errors import UsageError
from gluon_asymmnet.mxnet_private import structured_params

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG = os.path.join(FIXTURES, 'official-asymmnet-large-train-log.txt')
_LINE = re.compile(r'^(\s*)\((\w+)\): (\w+)(.*)$')


def released_shapes(log=LOG):
    """``{name: shape}`` of every tensor ``save_parameters`` wrote for the printed ``ModifiedMBv3``.

    A convolution's input channels are the previous convolution's outputs (the
    printed ``None -> C`` omits them), except the depthwise ones, whose input is
    the concat of ``groups`` channels; a BatchNorm has the channels of the
    convolution before it.
    """
    with open(log) as f:
        lines = f.read().split('\n')
    start = lines.index('ModifiedMBv3(')
    stack, shapes, channels = [], {}, 3
    for line in lines[start + 1:]:
        if line == ')':
            break
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        del stack[depth - 1:]
        stack.append(match.group(2))
        path, kind, rest = '.'.join(stack), match.group(3), match.group(4)
        if kind == 'Conv2D':
            inputs, out = re.search(r'\((\w+) -> (\d+)', rest).groups()
            inputs = channels if inputs == 'None' else int(inputs)
            out, kernel = int(out), int(re.search(r'kernel_size=\((\d+)', rest).group(1))
            groups = int(re.search(r'groups=(\d+)', rest).group(1)) if 'groups=' in rest else 1
            if groups > 1:   # depthwise, on the concat of the expansion and reused inputs
                inputs = groups
            shapes[path + '.weight'] = (out, inputs // groups, kernel, kernel)
            if 'bias=False' not in rest:
                shapes[path + '.bias'] = (out,)
            channels = out
        elif kind == 'BatchNorm':
            for name in ('gamma', 'beta', 'running_mean', 'running_var'):
                shapes['%s.%s' % (path, name)] = (channels,)
    return shapes


def synthesize_released(path, seed=0):
    """Write a file with exactly the released names and shapes; return the arrays."""
    rng = np.random.RandomState(seed)
    arrays = {}
    for name, shape in released_shapes().items():
        if name.endswith('running_var'):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(('gamma', 'running_mean', 'beta')):
            value = rng.normal(1.0 if name.endswith('gamma') else 0.0, 0.1, shape)
        else:
            value = rng.normal(0, (2.0 / np.prod(shape[1:])) ** 0.5, shape)
        arrays[name] = mx.nd.array(value.astype(np.float32))
    mx.nd.save(path, arrays)
    return arrays


def by_hand(arrays):
    """AsymmNet-L x1.0 loaded from released arrays with the rename written out here."""
    net = gluon_asymmnet.get_model('asymmnet_large_1.0')
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    for name, param in structured_params(net).items():
        released = re.sub(r'^(features\.\d+)\.dw_conv\.', r'\1.conv1.', name)
        released = re.sub(r'^(features\.\d+)\.pw_conv_linear\.', r'\1.conv2.', released)
        param.set_data(arrays[released])
    return net


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('released') / '0.7542-imagenet-modifiedv3-358-best.params')
    return path, synthesize_released(path)


def test_log_describes_every_tensor_of_asymmnet_large():
    shapes = released_shapes()
    net = gluon_asymmnet.get_model('asymmnet_large_1.0')
    assert len(shapes) == len(structured_params(net))
    assert shapes['features.0.weight'] == (16, 3, 3, 3)
    assert shapes['features.4.expand.conv.weight'] == (48, 16, 1, 1)
    assert shapes['features.4.conv1.conv.weight'] == (80, 1, 3, 3)
    assert shapes['features.6.se.conv1.weight'] == (24, 96, 1, 1)
    assert shapes['features.6.se.conv2.bias'] == (96,)
    assert shapes['features.17.conv2.bn.running_var'] == (160,)
    assert shapes['output.0.weight'] == (1000, 1280, 1, 1)


def test_round_trip_through_the_model_store(released, tmp_path, capsys):
    src, arrays = released
    store = str(tmp_path / 'store')
    from gluon_asymmnet.convert import main
    assert main([src, '--root', store]) == 0
    printed = capsys.readouterr().out.strip()
    path, sha1 = printed.split(' sha1=')
    assert os.path.basename(path) == 'asymmnet_large_1.0-%s.params' % sha1[:8]
    assert gluon_asymmnet.model_zoo.file_sha1(path) == sha1
    assert os.listdir(store) == [os.path.basename(path)]   # no temporary file left
    net = gluon_asymmnet.get_model('asymmnet_large_1.0', pretrained=True, root=store)
    x = mx.nd.random.normal(shape=(2, 3, 64, 64))
    expected = by_hand(arrays)(x).asnumpy()
    np.testing.assert_array_equal(net(x).asnumpy(), expected)
    assert net.synset is not None and len(net.classes) == 1000


def test_files_in_our_naming_pass_unchanged(tmp_path):
    net = gluon_asymmnet.get_model('asymmnet_small_0.35', classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    src = str(tmp_path / 'ours.params')
    net.save_parameters(src)
    path, _ = convert_params(src, 'asymmnet_small_0.35', str(tmp_path / 'store'))
    loaded = gluon_asymmnet.get_model('asymmnet_small_0.35', classes=10, pretrained=True,
                                      root=str(tmp_path / 'store'))
    x = mx.nd.random.normal(shape=(1, 3, 32, 32))
    np.testing.assert_array_equal(loaded(x).asnumpy(), net(x).asnumpy())


def _edited(released, tmp_path, edit):
    arrays = dict(released[1])
    edit(arrays)
    path = str(tmp_path / 'edited.params')
    mx.nd.save(path, arrays)
    return path


def test_shape_mismatch_names_the_tensor(released, tmp_path):
    def edit(arrays):
        arrays['features.5.conv1.conv.weight'] = mx.nd.zeros((97, 1, 3, 3))
    with pytest.raises(UsageError, match=r'features\.5\.conv1\.conv\.weight .*\(97, 1, 3, 3\)'):
        convert_params(_edited(released, tmp_path, edit), root=str(tmp_path / 'store'))
    assert not os.path.exists(tmp_path / 'store') or not os.listdir(tmp_path / 'store')


def test_missing_and_extra_tensors_are_named(released, tmp_path):
    with pytest.raises(UsageError, match=r'no features\.9\.dw_conv\.bn\.gamma \(released name '
                                         r'features\.9\.conv1\.bn\.gamma\)'):
        convert_params(_edited(released, tmp_path,
                               lambda a: a.pop('features.9.conv1.bn.gamma')), root=str(tmp_path))
    with pytest.raises(UsageError, match=r'features\.3\.se\.conv1\.weight has no place'):
        convert_params(_edited(released, tmp_path, lambda a: a.update(
            {'features.3.se.conv1.weight': mx.nd.zeros((8, 16, 1, 1))})), root=str(tmp_path))


def test_weights_of_another_width_are_refused(released, tmp_path):
    with pytest.raises(UsageError, match='does not fit asymmnet_large_0.75'):
        convert_params(released[0], 'asymmnet_large_0.75', str(tmp_path))


@pytest.mark.parametrize('content', [b'', b'not a parameter file at all'])
def test_cli_bad_file_is_one_line(tmp_path, content):
    src = tmp_path / 'bad.params'
    src.write_bytes(content)
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.convert', str(src), '--root',
                           str(tmp_path / 'store')], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert 'Traceback' not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith('python -m gluon_asymmnet.convert: '
                                                            'error: ')
    assert len(done.stderr.strip().splitlines()) == 1
