"""The record of what an exported graph expects and gives (``PREFIX-info.json``).

GluonCV's ``export_block`` writes a graph and its weights but not what the graph
takes; this record does: input shape and layout, whether the normalisation is
folded in, mean/std, crop ratio, and class names. ONNX files carry the same
record in their metadata (key :data:`META_KEY`). Its defaults come from the
model's :class:`~gluon_asymmnet.model_zoo.ModelConfig`.
"""
import json
import math
import numbers
import os

import numpy as np

from ..cli import MAX_INPUT_SIZE
from ..errors import UsageError
from ..fileio import atomic_write_json
from ..model_zoo import ModelConfig, file_sha1

__all__ = ['ExportInfo', 'make_info', 'parse_info', 'read_info', 'write_info', 'check_files',
           'export_of', 'net_synset', 'META_KEY', 'LAYOUTS']

#: Metadata key of the record in ONNX files.
META_KEY = 'gluon_asymmnet'
#: The layouts of an export's input: normalised NCHW, or 0-255 NHWC.
LAYOUTS = ('CHW', 'HWC')

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


def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value)


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _problem(record):
    """``(field, what is wrong)`` of a decoded record, or None when it is sound."""
    if not isinstance(record, dict):
        return None, 'is a JSON %s, not an object' % type(record).__name__
    for field in ('input_shape', 'layout', 'preprocess', 'mean', 'std', 'crop_ratio', 'classes'):
        if field not in record:
            return field, 'is missing'
    layout, shape = record['layout'], record['input_shape']
    if layout not in LAYOUTS:
        return 'layout', 'is %r, not one of %s' % (layout, ', '.join(LAYOUTS))
    if not (isinstance(shape, list) and len(shape) == 4 and all(map(_int, shape))):
        return 'input_shape', 'is %r, not a list of 4 integers' % (shape,)
    channels, height, width = shape[1:] if layout == 'CHW' else (shape[3],) + tuple(shape[1:3])
    if shape[0] < 1 or channels != 3 or height != width or not 1 <= height <= MAX_INPUT_SIZE:
        return 'input_shape', ('is %r: not one or more square %s images of 1 to %d pixels'
                               % (shape, 'RGB (3, H, W)' if layout == 'CHW' else 'RGB (H, W, 3)',
                                  MAX_INPUT_SIZE))
    if not isinstance(record['preprocess'], bool):
        return 'preprocess', 'is %r, not true or false' % (record['preprocess'],)
    for field in ('mean', 'std'):
        values = record[field]
        if not (isinstance(values, list) and len(values) == 3 and all(map(_number, values))):
            return field, 'is %r, not 3 finite numbers' % (values,)
    if min(record['std']) <= 0:
        return 'std', 'is %r: each must be > 0' % (record['std'],)
    if not (_number(record['crop_ratio']) and 0 < record['crop_ratio'] <= 1):
        return 'crop_ratio', 'is %r, not a number in (0, 1]' % (record['crop_ratio'],)
    classes, synset = record['classes'], record.get('synset')
    if not (_int(classes) and classes >= 1):
        return 'classes', 'is %r, not a positive integer' % (classes,)
    if synset is not None and not (isinstance(synset, list) and len(synset) == classes
                                   and all(isinstance(name, str) for name in synset)):
        return 'synset', ('is not a list of %d class names (one per class)' % classes)
    files = record.get('files')
    if files is not None and not (isinstance(files, dict) and all(
            isinstance(value, str) for value in files.values())):
        return 'files', 'is not an object of sha1 strings by suffix'
    return None


def parse_info(record, where):
    """The :class:`ExportInfo` of a decoded JSON ``record``, checked field by field.

    Parameters
    ----------
    record : object
        What ``json.load`` gave.
    where : str
        The file it came from, for the message.

    Raises
    ------
    UsageError
        One line naming ``where`` and the field at fault (the record is not an object; a
        field is missing; the layout is unknown; the input shape is not one or more
        square RGB images of a sane size; a mean or std is not finite, a std not > 0; the
        crop ratio is not in (0, 1]; the class names are not one per class...).
    """
    problem = _problem(record)
    if problem is not None:
        field, what = problem
        raise UsageError('%s: %s %s; export the model again rather than edit the record'
                         % (where, 'the record' if field is None else 'field %s' % field, what))
    return ExportInfo(record)


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


def export_of(path):
    """The prefix of the export that ``path`` is a file of (its ``-info.json`` included),
    or None.

    The exports of ``path``'s folder are those whose ``PREFIX-info.json`` lists their files
    (``files``, by suffix); an unreadable record counts for nothing.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    try:
        names = [name for name in os.listdir(folder) if name.endswith('-info.json')]
    except OSError:
        return None
    for name in sorted(names):
        prefix = os.path.join(folder, name[:-len('-info.json')])
        try:
            with open(prefix + '-info.json') as f:
                files = json.load(f).get('files') or {}
        except (OSError, ValueError, AttributeError):
            continue
        if path == prefix + '-info.json' or any(path == prefix + suffix for suffix in files):
            return prefix
    return None


def net_synset(net, classes):
    """Class names of ``net`` (its ``classes``; ImageNet's for 1000 outputs), or None."""
    synset = getattr(net, 'classes', None)
    if synset is None and classes == 1000:
        from gluoncv.data import ImageNet1kAttr
        synset = ImageNet1kAttr().classes
    return list(synset) if synset is not None and len(synset) == classes else None


def read_info(prefix):
    """The :class:`ExportInfo` of ``PREFIX-info.json``, or None if there is none.

    Raises
    ------
    UsageError
        Not JSON, or not a sound record (:func:`parse_info`).
    """
    path = prefix + '-info.json'
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except ValueError:
        raise UsageError('%s: not a valid JSON file' % path) from None
    return parse_info(record, path)


def write_info(info, prefix):
    """Write ``PREFIX-info.json`` atomically; returns its path."""
    path = prefix + '-info.json'
    atomic_write_json(info, path)
    return path
