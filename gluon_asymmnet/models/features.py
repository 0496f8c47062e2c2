"""Multi-scale feature maps of a classification network (for detection,
segmentation and pose backbones), in the manner of timm's ``features_only``.

Every network of the package records ``feature_info``: for each resolution
(stride 2, 4, 8, 16, 32) the index in ``features`` of the block that ends it and
its channels.  :class:`FeatureExtractor` runs ``features`` up to the deepest
requested stage and returns the requested maps.
"""
from mxnet.gluon.block import HybridBlock

from .graphs import GraphPerInput

__all__ = ['FeatureExtractor', 'record_stage']


def record_stage(feature_info, index, reduction, channels):
    """Note that ``features[index]`` ends the stage at ``reduction`` (in place)."""
    entry = dict(index=index, reduction=reduction, channels=channels)
    if feature_info and feature_info[-1]['reduction'] == reduction:
        feature_info[-1] = entry
    else:
        feature_info.append(entry)


class FeatureExtractor(GraphPerInput, HybridBlock):
    """Return a network's feature maps at chosen strides.

    Hybridized, each call runs the graph of its input's shape and mode, as the
    networks do (:class:`~gluon_asymmnet.models.graphs.GraphPerInput`).

    Parameters
    ----------
    net : HybridBlock
        A network of this package (it has ``features`` and ``feature_info``).
    out_indices : sequence of int, default (1, 2, 3, 4)
        Indices into ``net.feature_info`` (0: stride 2 ... 4: stride 32); the
        default gives strides 4, 8, 16 and 32.

    Attributes
    ----------
    feature_info : list of dict
        ``reduction`` and ``channels`` of each returned map, in order.

    Examples
    --------
    >>> net = gluon_asymmnet.get_model('asymmnet_large_1.0', features_only=True)
    >>> [f['channels'] for f in net.feature_info]
    [24, 40, 112, 960]
    """

    def __init__(self, net, out_indices=(1, 2, 3, 4), **kwargs):
        super(FeatureExtractor, self).__init__(**kwargs)
        info = getattr(net, 'feature_info', None)
        if info is None:
            raise ValueError('%s does not describe its feature maps (no feature_info)'
                             % type(net).__name__)
        bad = [i for i in out_indices if not 0 <= i < len(info)]
        if bad or not out_indices:
            raise ValueError('out_indices must be a non-empty subset of 0..%d, got %r'
                             % (len(info) - 1, tuple(out_indices)))
        self.out_indices = tuple(sorted(set(out_indices)))
        self.feature_info = [dict(info[i]) for i in self.out_indices]
        self._taps = [f['index'] for f in self.feature_info]
        last = self._taps[-1]
        self.features = net.features[:last + 1]

    def hybrid_forward(self, F, x):
        outs = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self._taps:
                outs.append(x)
        return tuple(outs)
