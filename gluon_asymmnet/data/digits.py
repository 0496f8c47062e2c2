"""The embedded demo data set: scikit-learn's handwritten digits as images and RecordIO.

``load_digits()`` ships with scikit-learn (1,797 real 8x8 greyscale scans of the
digits 0-9, UCI "Optical Recognition of Handwritten Digits"), so nothing is
downloaded. :func:`prepare_digits` upscales them (bicubic) to ``size x size``
RGB, splits them 80/20 stratified by class with a fixed seed, and writes
``<root>/digits-<size>/`` once::

    train.rec train.idx val.rec val.idx   # lossless PNG records, label = digit
    train/<digit>/<n>.png val/<digit>/<n>.png
    digits.json                           # counts; present only in a complete build

The folder is built under a temporary name and renamed into place, so readers
never see half a build and two processes preparing at once both end up using the
one that was renamed first.
"""
import collections
import json
import os
import shutil
import tempfile

import cv2
import numpy as np
from mxnet import recordio
from PIL import Image

from ..errors import DataError, check_memory

__all__ = ['DigitsData', 'default_digits_root', 'prepare_digits', 'digits_images']

#: Where the prepared files are (``train_dir``/``val_dir``: class folders).
DigitsData = collections.namedtuple(
    'DigitsData', 'train_rec train_idx val_rec val_idx train_dir val_dir classes num_train num_val')

_CLASSES = [str(digit) for digit in range(10)]
#: Images in the set.
_COUNT = 1797
_MANIFEST = 'digits.json'
_VAL_FRACTION = 0.2
_SPLIT_SEED = 0


def digits_images(size=32):
    """All 1,797 digits as ``uint8`` RGB images ``(N, size, size, 3)`` and int labels.

    In ``load_digits()`` order; the records keep that position as ``header.id2``.
    """
    from sklearn.datasets import load_digits
    digits = load_digits()
    # pixel values are 0..16
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    large = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
                      for image in small])
    return np.repeat(large[..., None], 3, axis=-1), digits.target.astype(np.int64)


def _write_split(folder, name, images, labels, sources):
    """``<name>.rec/.idx`` and ``<name>/<label>/<n>.png`` for one split.

    Record ``n`` has ``id = n`` and ``id2`` = its position in ``load_digits()`` (``sources[n]``).
    """
    for label in _CLASSES:
        os.makedirs(os.path.join(folder, name, label))
    record = recordio.MXIndexedRecordIO(os.path.join(folder, name + '.idx'),
                                        os.path.join(folder, name + '.rec'), 'w')
    for position, (image, label, source) in enumerate(zip(images, labels, sources)):
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        header = recordio.IRHeader(0, float(label), position, int(source))
        # lossless; for PNG ``quality`` is the zlib compression level
        record.write_idx(position, recordio.pack_img(header, bgr, quality=3, img_fmt='.png'))
        cv2.imwrite(os.path.join(folder, name, str(label), '%05d.png' % position), bgr)
    record.close()


def _result(folder):
    with open(os.path.join(folder, _MANIFEST)) as manifest:
        counts = json.load(manifest)
    return DigitsData(
        train_rec=os.path.join(folder, 'train.rec'), train_idx=os.path.join(folder, 'train.idx'),
        val_rec=os.path.join(folder, 'val.rec'), val_idx=os.path.join(folder, 'val.idx'),
        train_dir=os.path.join(folder, 'train'), val_dir=os.path.join(folder, 'val'),
        classes=list(_CLASSES), num_train=counts['num_train'], num_val=counts['num_val'])


def default_digits_root():
    """Where the evaluation tools keep the digits: ``$MXNET_HOME/datasets``
    (``~/.mxnet/datasets`` without ``MXNET_HOME``), as MXNet keeps its data sets."""
    return os.path.join(os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet')), 'datasets')


def prepare_digits(root, size=32):
    """Build (once) and return the digits data set under ``root``.

    Parameters
    ----------
    root : str
        Cache folder (created if needed); the data go to ``<root>/digits-<size>/``.
    size : int
        Side of the square RGB images (the 8x8 scans are upscaled bicubically).

    Returns
    -------
    DigitsData
        Paths of the record files and class folders, the class names ``'0'..'9'``,
        and the sample counts (1,437 train, 360 val).

    Raises
    ------
    DataError
        ``root`` cannot be written, or holds an incomplete ``digits-<size>``.
    UsageError
        The images at ``size`` do not fit in this machine's memory (checked first).
    """
    root = os.path.abspath(os.path.expanduser(root))
    folder = os.path.join(root, 'digits-%d' % size)
    if os.path.isdir(folder):
        if not os.path.isfile(os.path.join(folder, _MANIFEST)):
            raise DataError('%s: not a complete digits build (no %s); delete it'
                            % (folder, _MANIFEST))
        return _result(folder)
    # every image upscaled, then stacked: twice the set in memory
    check_memory(2 * _COUNT * size * size * 3, 'the digits data set at %d px' % size)
    build = None
    try:
        os.makedirs(root, exist_ok=True)
        build = tempfile.mkdtemp(prefix='.digits-%d-' % size, dir=root)
        from sklearn.model_selection import train_test_split
        images, labels = digits_images(size)
        train_n, val_n = train_test_split(np.arange(len(labels)), test_size=_VAL_FRACTION,
                                          stratify=labels, random_state=_SPLIT_SEED)
        _write_split(build, 'train', images[train_n], labels[train_n], train_n)
        _write_split(build, 'val', images[val_n], labels[val_n], val_n)
        with open(os.path.join(build, _MANIFEST), 'w') as manifest:
            json.dump({'source': 'sklearn.datasets.load_digits', 'size': size,
                       'val_fraction': _VAL_FRACTION, 'split_seed': _SPLIT_SEED,
                       'num_train': len(train_n), 'num_val': len(val_n)}, manifest)
        os.chmod(build, 0o755)
        try:
            os.rename(build, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, _MANIFEST)):
                raise
            # another process renamed its complete build first: use that one
    except OSError as error:
        raise DataError('%s: cannot write the digits data set here (%s)'
                        % (root, error.strerror or error)) from None
    finally:
        if build is not None:
            shutil.rmtree(build, ignore_errors=True)
    return _result(folder)
