"""Export a network for deployment: MXNet symbol/params or ONNX, with ``-info.json``.

``export_model`` writes::

    PREFIX-symbol.json PREFIX-0000.params   # fmt='mxnet' (SymbolBlock.imports)
    PREFIX.onnx PREFIX-batch1.onnx          # fmt='onnx': dynamic batch, batch 1
    PREFIX-info.json                        # input shape, layout, mean/std, synset

The preprocessing (mean/std normalisation and, for ``layout='HWC'``, the
transpose of ``(N, H, W, 3)`` RGB images of 0-255 values) can be folded into the
graph with GluonCV's ``export_block``.

An export is one unit: its files are written to a staging folder beside the
target, checked, then moved into place with ``PREFIX-info.json`` last, which
records the sha1 of every other file. Readers (:func:`load_exported
<gluon_asymmnet.deploy.runtime.load_exported>`) refuse files that do not match
it, so a cut-short or concurrent export is an error, never a silent mix.

Which graph each format gets (:mod:`gluon_asymmnet.models.graphs`): each file
holds the CPU inference graph of the batch it is for.  MXNet files and
``PREFIX-batch1.onnx`` plan a batch of 1, ``PREFIX.onnx`` (any batch) a batch of
:data:`ONNX_PLAN_BATCH`.  For AsymmNet that decides the feature reuse per block
(``auto``): without the concatenated map (``split``) where the map is large, as
every block's is in a batch of 32 at 224x224, with it elsewhere.  ONNX Runtime
follows the same rule as MXNet: in its profiler (``bench/ort_profile.py``,
AsymmNet-L x1.0, kernel times, one thread, interleaved sessions) the split graph
took 0.77-0.85x the concatenated one's time at batch 32 and 224, 0.83-0.97x at
96 to 160, but 1.06-1.08x at batch 1 and 224 (1.00x once the export folded
each block's last BatchNorm into its convolutions), and 1.5-1.6x at 32x32 and
batch 32: its many small operators cost more than the concat on small maps.
"""
import os
import shutil
import tempfile

import mxnet as mx

from ..errors import UsageError
from ..fileio import publish
from ..model_zoo import ModelConfig, file_sha1, get_model_config
from ..models.graphs import traced_for
from .graph import deploy_symbol
from .info import make_info, write_info
from .onnx import export_onnx

__all__ = ['ONNX_PLAN_BATCH', 'export_model', 'save_export']

#: The batch whose CPU inference graph ``PREFIX.onnx`` (dynamic batch) holds.
ONNX_PLAN_BATCH = 32


class _Normalize(mx.gluon.HybridBlock):
    """0-255 RGB in ``layout`` to normalised NCHW: the data pipeline's mean/std, folded."""

    def __init__(self, mean, std, layout, **kwargs):
        super(_Normalize, self).__init__(**kwargs)
        shape = (1, 1, 1, 3) if layout == 'HWC' else (1, 3, 1, 1)
        self.layout = layout
        with self.name_scope():
            self.mean = self.params.get_constant('mean', mx.nd.array(mean).reshape(shape))
            self.std = self.params.get_constant('std', mx.nd.array(std).reshape(shape))

    def hybrid_forward(self, F, x, mean, std):
        x = F.broadcast_div(F.broadcast_minus(x, mean), std)
        return F.transpose(x, axes=(0, 3, 1, 2)) if self.layout == 'HWC' else x


def _config_of(net):
    name = getattr(net, 'model_name', None)
    try:
        return get_model_config(name) if name else ModelConfig()
    except ValueError:   # a name outside the zoo
        return ModelConfig()


def export_model(net, prefix, input_size=None, preprocess=False, layout='CHW', fmt='mxnet',
                 config=None):
    """Export ``net`` to ``PREFIX-symbol.json``/``-0000.params`` or ONNX, with ``PREFIX-info.json``.

    Parameters
    ----------
    net : HybridBlock
        Initialised, on the device it is traced and checked on (its graph is
        the one for that device); its ``model_name`` and ``classes`` (class
        names) attributes, if any, are recorded.
    prefix : str
        Output path prefix (folders are created).
    input_size : int, optional
        Side of the square input (default: ``config``'s).
    preprocess : bool
        Fold the mean/std normalisation into the graph (GluonCV ``export_block``):
        the graph then takes 0-255 RGB images.
    layout : {'CHW', 'HWC'}
        Input layout with ``preprocess`` (``HWC``: ``(N, H, W, 3)``, as decoded
        images are); without it always ``CHW``.
    fmt : {'mxnet', 'onnx'}
        ``onnx`` writes ``PREFIX.onnx`` (dynamic batch) and ``PREFIX-batch1.onnx``
        instead of the MXNet files, each checked in ONNX Runtime.
    config : ModelConfig, optional
        Input size, crop ratio and mean/std to export with and record; default:
        the record of ``net.model_name`` (ImageNet's 224x224 for other networks).

    Returns
    -------
    list of str
        The files written.
    """
    from gluoncv.utils import export_block
    if layout not in ('CHW', 'HWC'):
        raise UsageError('the input layout must be CHW or HWC, not %s' % layout)
    if layout == 'HWC' and not preprocess:
        raise UsageError('the HWC layout needs the normalisation folded in (a graph without '
                         'it takes normalised NCHW input)')
    if fmt not in ('mxnet', 'onnx'):
        raise UsageError('unknown export format %r: mxnet or onnx' % fmt)
    config = config or _config_of(net)
    config = config._replace(input_size=input_size or config.input_size)
    size = config.input_size
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    classes = net(mx.nd.zeros((1, 3, size, size), ctx=ctx)).shape[1]
    info = make_info(getattr(net, 'model_name', None), classes, getattr(net, 'classes', None),
                     config, preprocess, layout)

    def trace(work, batch):
        """``work-symbol.json``/``-0000.params``: the CPU inference graph of ``batch``."""
        normalize = _Normalize(info['mean'], info['std'], layout) if preprocess else None
        try:
            with traced_for(mx.cpu(), [batch] + info['input_shape'][1:]), ctx:
                export_block(work, net, data_shape=tuple(info['input_shape'][1:]),
                             preprocess=normalize, layout=layout, ctx=ctx)
        except RuntimeError:   # GluonCV's wrapper of MXNet's error; the forward ran above
            raise OSError('cannot write %s: MXNet could not save the graph or its parameters '
                          '(disk full or file size limit?)' % prefix) from None
        deploy_symbol(mx.sym.load(work + '-symbol.json')).save(work + '-symbol.json')

    def write(work):
        trace(work, 1)
        if fmt == 'onnx':
            trace(work + '-any', ONNX_PLAN_BATCH)
            export_onnx(work + '-any', work, info, batch1_prefix=work)

    suffixes = ['-symbol.json', '-0000.params'] if fmt == 'mxnet' else ['.onnx', '-batch1.onnx']
    return save_export(prefix, write, suffixes, info)


def save_export(prefix, write, suffixes, info=None):
    """Write the files of one export as a unit: ``PREFIX + suffix`` for each suffix, and the info.

    ``write(work)`` writes ``work + suffix`` for each suffix in a staging folder
    beside ``prefix``; their sha1 go into ``info`` (``PREFIX-info.json``), and
    the files are moved into place with the info last
    (:func:`gluon_asymmnet.fileio.publish`).
    Without an info the files are moved into place all the same.

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    OSError
        ``cannot write PREFIX: reason`` (what MXNet could not write included);
        the files of ``prefix`` are then as they were.
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    try:
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix='.export-', dir=folder)
    except OSError as error:
        raise OSError('cannot write %s: %s' % (prefix, error.strerror)) from None
    try:
        work = os.path.join(staging, 'net')
        write(work)
        if info is not None:
            info['files'] = {suffix: file_sha1(work + suffix) for suffix in suffixes}
            write_info(info, work)
            suffixes = list(suffixes) + ['-info.json']
        return publish(work, prefix, suffixes)
    except mx.base.MXNetError as error:   # what MXNet or its ONNX exporter could not write
        raise OSError('cannot write %s: %s' % (prefix, str(error).strip().splitlines()[0][:200]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
