"""Activation traffic of a graph (``gluon_asymmnet.complexity.traffic``), checked by hand."""
import pytest
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from gluon_asymmnet import AsymmBottleneck
from gluon_asymmnet.complexity import traffic


class Tiny(HybridBlock):
    """1x1 convolution 3 -> 8, ReLU, concat of the ReLU and the convolution, flatten."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(8, 1, in_channels=3, use_bias=False)

    def hybrid_forward(self, F, x):
        y = self.conv(x)
        return F.Flatten(F.concat(F.Activation(y, act_type='relu'), y, dim=1))


def test_a_small_graph_by_hand():
    net = Tiny()
    net.initialize()
    counted = traffic(net, (1, 3, 4, 4))
    # bytes: input 3x4x4 floats = 192, conv/relu outputs 512 each, the concat 1024
    ops = {layer.op: layer for layer in counted.layers}
    assert (ops['Convolution'].forward_read, ops['Convolution'].forward_write) == (192, 512)
    assert (ops['Activation'].forward_read, ops['Activation'].forward_write) == (512, 512)
    assert (ops['Concat'].forward_read, ops['Concat'].forward_write) == (1024, 1024)
    assert ops['Concat'].concat and not ops['Activation'].concat
    assert ops['Flatten'][2:6] == (0, 0, 0, 0)                      # a view
    # backward: the convolution's output feeds two operators: read both gradients (1024),
    # write their sum (512), then read it and the input (704); the image needs no gradient
    assert (ops['Convolution'].backward_read, ops['Convolution'].backward_write) == (1728, 512)
    assert (ops['Activation'].backward_read, ops['Activation'].backward_write) == (1024, 512)
    assert (ops['Concat'].backward_read, ops['Concat'].backward_write) == (1024, 1024)
    assert counted.total() == 192 + 512 + 512 + 512 + 1024 + 1024
    assert counted.total(concat=False) == 192 + 512 + 512 + 512
    assert counted.total(training=True) == 3776 + 1728 + 512 + 1024 + 512 + 1024 + 1024
    assert counted.total(training=True, concat=False) == 1728 + 2240 + 1536
    # per image: the same at any batch
    assert traffic(net, (4, 3, 4, 4)).total(training=True) == counted.total(training=True)


def bottleneck(asymmrate):
    block = AsymmBottleneck(8, 24, 8, asymmrate=asymmrate, formulation='concat')
    block.initialize()
    return traffic(block, (1, 8, 4, 4))


def test_the_feature_reuse_concat_of_a_bottleneck():
    reuse, plain = bottleneck(1), bottleneck(0)
    # the depthwise stage is 24 + 8 channels wide: the concat reads [x, e, x] (8 + 16 + 8
    # channels of 4x4 floats) and writes them
    assert reuse.total() - reuse.total(concat=False) == 2 * 32 * 16 * 4
    assert [layer.op for layer in reuse.layers if layer.concat] == ['Concat']
    assert not any(layer.concat for layer in plain.layers)
    # r=0: the expansion writes 24 channels; r=1: 16, and the depthwise stage is 32 wide
    assert plain.total() != reuse.total(concat=False)
    expand = [layer for layer in reuse.layers if layer.op == 'Convolution'][0]
    assert expand.forward_write == 16 * 16 * 4


class Fusable(HybridBlock):
    """1x1 convolution 3 -> 8, BatchNorm, hard swish, then the sum of two 1x1
    convolutions 8 -> 8 of it (the partial sums of a split bottleneck)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(8, 1, in_channels=3, use_bias=False)
            self.bn = nn.BatchNorm(in_channels=8)
            self.left = nn.Conv2D(8, 1, in_channels=8, use_bias=False)
            self.right = nn.Conv2D(8, 1, in_channels=8, use_bias=False)

    def hybrid_forward(self, F, x):
        y = self.bn(self.conv(x))
        y = y * F.hard_sigmoid(y, alpha=1. / 6, beta=0.5)
        return self.left(y) + self.right(y)


def test_a_fusing_runtime_counts_convolutions_and_accumulations_only():
    net = Fusable()
    net.initialize()
    counted = traffic(net, (1, 3, 4, 4), graph='inference')
    fused = {layer.op: layer.fused_forward for layer in counted.layers}
    # BatchNorm and the hard swish run inside the first convolution
    assert fused['BatchNorm'] == fused['hard_sigmoid'] == fused['elemwise_mul'] == 0
    # the addition accumulates into one convolution's output: it reads the other one
    assert fused['elemwise_add'] == 512
    assert counted.total(fused=True) == (192 + 512) + 2 * (512 + 512) + 512
    # unfused: BatchNorm 1024, hard_sigmoid 1024, the product 1536, the addition 1536
    assert counted.total() == (192 + 512) + 1024 + 1024 + 1536 + 2 * (512 + 512) + 1536
    with pytest.raises(ValueError):
        counted.total(training=True)
    with pytest.raises(ValueError):
        traffic(net, (1, 3, 4, 4)).total(training=True, fused=True)
    with pytest.raises(ValueError):
        traffic(net, (1, 3, 4, 4), graph='serving')


def test_the_inference_graph_without_the_concat_counts_no_parameter_operator():
    block = AsymmBottleneck(8, 24, 8, asymmrate=1, formulation='split')
    block.initialize()
    split = traffic(block, (1, 8, 4, 4), graph='inference')
    ops = [layer.op for layer in split.layers]
    # the parts' depthwise convolutions and partial sums; no concat of maps
    assert ops.count('Convolution') == 1 + 3 + 3 and 'Concat' not in ops
    assert not any(layer.concat for layer in split.layers)
    # BatchNorm folded into the depthwise weights is computed from parameters alone
    assert all(layer.forward_read > 0 for layer in split.layers if layer.op != 'Reshape')
    concat = bottleneck(1)
    assert split.total(fused=True) < concat.total(fused=True)
