"""Put released AsymmNet weights into the local model store.

``python -m gluon_asymmnet.convert SRC.params [--model asymmnet_large_1.0] [--root STORE]``
(console script ``asymmnet-convert``) maps a parameter file onto a zoo model,
checks every tensor, and writes ``<store>/<model>-<sha1[:8]>.params`` so that
``gluon_asymmnet.get_model(model, pretrained=True)`` loads it. It prints the path
and the sha1.

The released file
-----------------
The only public ImageNet weights, ``0.7542-imagenet-modifiedv3-358-best.params``
(AsymmNet-L x1.0, 75.42% top-1), were written by ``net.save_parameters`` of the
original ``train.py`` from an older class (``ModifiedMBv3``, printed at the top of
its training log). ``save_parameters`` stores structural names, and that class
has the same layout as ours (``features.0``-``features.24``, ``output.0``) but
names the bottleneck children ``expand``/``conv1``/``se``/``conv2``::

    features.<i>.conv1.{conv.weight, bn.*}  ->  features.<i>.dw_conv.{...}
    features.<i>.conv2.{conv.weight, bn.*}  ->  features.<i>.pw_conv_linear.{...}

(``bn.*``: ``gamma beta running_mean running_var``). ``expand.*`` and
``se.conv1/conv2.{weight,bias}`` keep their names, as do the stem, the head and
``output.0.{weight,bias}``. Files already in this package's naming (saved by
``gluon_asymmnet`` or by the newer original ``models/asymmnet.py``) pass
unchanged. This is derived from the printed network; the file itself could not
be inspected here.
"""
import os
import sys
import tempfile

import mxnet as mx

from .cli import OneLineParser, run
from .errors import UsageError
from .fileio import atomic_save
from .model_zoo import file_sha1, get_model, get_model_config, model_store_root
from .params import (RELEASED_RENAMES, classifier_outputs, ours_to_released, param_shapes,
                     structured_weights)

__all__ = ['RELEASED_RENAMES', 'convert_params', 'main']

def convert_params(src, model='asymmnet_large_1.0', root=None):
    """Map ``src`` onto ``model`` and write it into the model store.

    Parameters
    ----------
    src : str
        A ``save_parameters`` file in the released naming or in ours.
    model : str
        Zoo name; the number of classes is read from the head's last weight.
    root : str, optional
        Model store (see :func:`gluon_asymmnet.model_zoo.model_store_root`).

    Returns
    -------
    (str, str)
        The written path and the file's sha1.

    Raises
    ------
    UsageError
        An unreadable file, or a tensor that is missing, extra or of another
        shape (named both ways, released and ours).
    """
    if not os.path.isfile(src):
        raise UsageError('%s: no such file' % src)
    try:
        probe = get_model(model)
    except ValueError as error:
        raise UsageError(str(error)) from None
    converted = structured_weights(src, probe)   # released, structural or an export's names
    if not converted:
        raise UsageError('%s: holds no named parameters' % src)
    classes = classifier_outputs({name: value.shape for name, value in converted.items()}) or 1000
    net = get_model(model, classes=classes)
    shapes = param_shapes(net, get_model_config(model).input_size)
    for name, shape in shapes.items():
        if name not in converted:
            raise UsageError('%s does not fit %s: it has no %s (released name %s)'
                             % (src, model, name, ours_to_released(name)))
        if tuple(converted[name].shape) != shape:
            raise UsageError('%s does not fit %s: %s (ours %s) has shape %s, the model needs %s'
                             % (src, model, ours_to_released(name), name,
                                tuple(converted[name].shape), shape))
    extra = sorted(set(converted) - set(shapes))
    if extra:
        raise UsageError('%s does not fit %s: %s has no place in the model (%d extra tensors)'
                         % (src, model, ours_to_released(extra[0]), len(extra)))
    store = model_store_root(root)
    os.makedirs(store, exist_ok=True)
    ordered = {name: converted[name] for name in sorted(shapes)}
    # A staging name of this process's own: parallel converts of one file into one
    # store must not rename away or delete the file another one is hashing.
    handle, staging = tempfile.mkstemp(prefix='.%s-' % model, suffix='.params', dir=store)
    os.close(handle)
    try:
        atomic_save(staging, lambda tmp: mx.nd.save(tmp, ordered))
        sha1 = file_sha1(staging)
        path = os.path.join(store, '%s-%s.params' % (model, sha1[:8]))
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path, sha1


def main(argv=None):
    """Entry point; returns the exit status (2 with a one-line error for bad input)."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.convert',
        description='Map released AsymmNet weights (or weights in this package\'s naming) onto '
                    'a zoo model and store them so that get_model(model, pretrained=True) '
                    'loads them.')
    parser.add_argument('src', help='the parameter file, e.g. '
                                    '0.7542-imagenet-modifiedv3-358-best.params')
    parser.add_argument('--model', default='asymmnet_large_1.0', help='zoo name')
    parser.add_argument('--root', default=None,
                        help='model store (default: $MXNET_HOME/models or ~/.mxnet/models)')
    args = parser.parse_args(argv)
    path, sha1 = run(parser, convert_params, args.src, args.model, args.root)
    print('%s sha1=%s' % (path, sha1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
