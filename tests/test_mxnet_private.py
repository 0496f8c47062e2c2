"""The private parts of MXNet the package uses all live in ``gluon_asymmnet/mxnet_private.py``,
and they still exist and do what they are used for (a new MXNet fails here, by name)."""
import ast
import importlib
import os

import mxnet as mx
from mxnet.gluon import nn

import gluon_asymmnet
from gluon_asymmnet import get_model
from gluon_asymmnet.mxnet_private import PRIVATE_PARTS, structured_params

PACKAGE_DIR = os.path.dirname(gluon_asymmnet.__file__)


def _mxnet_private_names():
    """Private attribute names of the MXNet objects the package handles."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, in_channels=3), nn.BatchNorm(in_channels=4), nn.Dense(2))
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 8, 8)))
    symbol = net(mx.sym.var('data'))
    trainer = mx.gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.1})
    objects = [net, net[0], net[1], net[2], net[0].weight, net.collect_params(), symbol,
               mx.nd.zeros(1), mx.gluon.SymbolBlock(symbol, mx.sym.var('data'),
                                                    params=net.collect_params()), trainer]
    return {name for obj in objects for name in dir(obj)
            if name.startswith('_') and not name.startswith('__')}


def test_the_package_uses_no_private_part_of_mxnet_outside_mxnet_private():
    private = _mxnet_private_names()
    assert '_collect_params_with_prefix' in private and '_kwargs' in private   # the probe sees
    used = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith('.py') or path.endswith('mxnet_private.py'):
                continue
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.Attribute) and node.attr in private:
                    used.append('%s:%d %s' % (os.path.relpath(path, PACKAGE_DIR), node.lineno,
                                              node.attr))
    assert not used, used


def test_every_private_part_still_exists():
    for path, attribute in PRIVATE_PARTS:
        module, name = path.rsplit('.', 1)
        owner = getattr(importlib.import_module(module), name)
        assert callable(getattr(owner, attribute, None)), (
            'MXNet %s changed: %s.%s is gone (gluon_asymmnet/mxnet_private.py uses it)'
            % (mx.__version__, path, attribute))


def test_structured_params_are_the_names_save_parameters_writes(tmp_path):
    net = get_model('asymmnet_small_0.35', classes=10)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / 'net.params')
    net.save_parameters(path)
    names = structured_params(net)
    assert sorted(names) == sorted(mx.nd.load(path))
    assert 'features.4.expand.conv.weight' in names
    assert names['output.0.weight'] is net.output[0].weight
