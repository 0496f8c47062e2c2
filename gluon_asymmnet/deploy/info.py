"""The record of what an exported graph expects and gives (``PREFIX-info.json``).

GluonCV's ``export_block`` writes a graph and its weights but not what the graph
takes; this record does: input shape and layout, whether the normalisation is
folded in, mean/std, crop ratio, and class names. ONNX files carry the same
record in their metadata (key :data:`META_KEY`). Its defaults come from the
model's :class:`~gluon_asymmnet.model_zoo.ModelConfig`.
"""
import json
import os

import numpy as np

from ..errors import UsageError
from ..fileio import atomic_write_json
from ..model_zoo import ModelConfig, file_sha1

__all__ = ['ExportInfo', 'make_info', 'read_info', 'write_info', 'check_files', 'net_synset',
           'META_KEY']

#: Metadata key of the record in ONNX files.
META_KEY = 'gluon_asymmnet'

class ExportInfo(dict):
    """What an exported graph expects and gives (the ``PREFIX-info.json`` record).

    Keys: ``model`` (zoo name or ``null``), ``input_shape`` (batch 1, in
    ``layout``), ``layout`` (``'CHW'``: normalised NCHW; ``'HWC'``: NHWC),
    ``preprocess`` (mean/std folded into the graph: the input is 0-255 RGB),
    ``mean``/``std`` (0-255 RGB), ``crop_ratio``, ``classes`` (number of
    outputs), ``synset`` (class names, or ``null``) and ``files`` (the sha1 of
    each file of the export, by suffix: what makes the files one unit).
    """

    @property
    def input_size(self):
        """Side of the square input image."""
        shape = self['input_shape']
        return shape[2] if self['layout'] == 'CHW' else shape[1]

    def to_graph_input(self, batch):
        """Turn normalised ``(N, 3, H, W)`` data (numpy) into what the graph takes."""
        if not self['preprocess']:
            return batch
        mean = np.asarray(self['mean'], np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self['std'], np.float32).reshape(1, 3, 1, 1)
        raw = batch * std + mean
        return raw.transpose(0, 2, 3, 1) if self['layout'] == 'HWC' else raw


def make_info(model, classes, synset=None, config=ModelConfig(), preprocess=False,
              layout='CHW'):
    """An :class:`ExportInfo` for a network of ``classes`` outputs.

    Parameters
    ----------
    model : str or None
        Zoo name.
    classes : int
    synset : list of str, optional
    config : ModelConfig
        Input size, crop ratio, mean/std: the model's record, or the settings a
        run trained with (``config._replace(input_size=..., crop_ratio=...)``).
    preprocess, layout
        See :func:`gluon_asymmnet.deploy.export.export_model`.
    """
    input_size, mean, std = config.input_size, config.mean, config.std
    shape = (1, input_size, input_size, 3) if layout == 'HWC' else (1, 3, input_size, input_size)
    return ExportInfo(model=model, input_shape=list(shape), layout=layout,
                      preprocess=bool(preprocess), mean=list(mean), std=list(std),
                      crop_ratio=config.crop_ratio, classes=int(classes),
                      synset=list(synset) if synset is not None else None)


def check_files(info, prefix):
    """Raise unless the files of ``prefix`` are those its info was written with.

    An export is published file by file with the info last: a reader that finds
    files of another (or an unfinished) export beside this info refuses them.

    Raises
    ------
    UsageError
    """
    for suffix, sha1 in (info.get('files') or {}).items():
        path = prefix + suffix
        if os.path.isfile(path) and file_sha1(path) != sha1:
            raise UsageError('%s does not belong to %s-info.json: the export was cut short or '
                             'overwritten by another one; export it again' % (path, prefix))


def net_synset(net, classes):
    """Class names of ``net`` (its ``classes``; ImageNet's for 1000 outputs), or None."""
    synset = getattr(net, 'classes', None)
    if synset is None and classes == 1000:
        from gluoncv.data import ImageNet1kAttr
        synset = ImageNet1kAttr().classes
    return list(synset) if synset is not None and len(synset) == classes else None


def read_info(prefix):
    """The :class:`ExportInfo` of ``PREFIX-info.json``, or None if there is none."""
    path = prefix + '-info.json'
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return ExportInfo(json.load(f))
    except ValueError:
        raise UsageError('%s: not a valid JSON file' % path) from None


def write_info(info, prefix):
    """Write ``PREFIX-info.json`` atomically; returns its path."""
    path = prefix + '-info.json'
    atomic_write_json(info, path)
    return path
