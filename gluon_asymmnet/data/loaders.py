"""Training and validation data: RecordIO iterators, image-folder loaders, one batch loop.

Both paths follow GluonCV's ``scripts/classification/imagenet/train_imagenet.py``
recipe. Training: random resized crop (area 0.08-1, aspect 3/4-4/3), horizontal
mirror, brightness/contrast/saturation jitter 0.4, PCA lighting noise 0.1,
shuffling. Validation: resize the shorter side to ``ceil(input_size /
crop_ratio)``, centre crop. Both normalise with the ImageNet mean and standard
deviation (RGB, 0-255 scale). Under a distributed kvstore every worker reads its
own part (``num_parts=kv.num_workers, part_index=kv.rank``).
"""
import collections
import itertools
import math
import os
import random
import typing

import cv2
import mxnet as mx
from mxnet import gluon
from mxnet.gluon.data.vision import ImageFolderDataset, transforms

from ..errors import DataError
from ..model_zoo import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ModelConfig
from .records import check_record_file, count_classes, read_index, record_labels, sample_positions

__all__ = ['DataInfo', 'imagenet_rec_iters', 'image_folder_loaders',
           'batches', 'check_record_file', 'record_labels', 'check_image_folder',
           'check_data', 'DataSource', 'check_val_folder', 'val_folder_loader', 'record_synset',
           'synset_paths', 'SYNSET_SUFFIX', 'split_batch']

#: ImageNet channel means and standard deviations (RGB, pixel values 0-255).
_JITTER = 0.4
_LIGHTING = 0.1
#: Record files of up to this many records (ImageNet's validation set has 50,000)
#: are searched for the record that failed to decode.
_MAX_SEARCH = 50000
#: ImageNet's preprocessing (the defaults of the zoo's model records).
_DEFAULT = ModelConfig()
#: Suffix of the class-name file of a RecordIO set (see :func:`synset_paths`).
SYNSET_SUFFIX = '.synset.txt'


def _resize_for(input_size, crop_ratio):
    return int(math.ceil(input_size / crop_ratio))


def _part_size(count, num_parts, part_index):
    """Records in one part, as MXNet's indexed RecordIO splitter cuts them (ceil-sized parts)."""
    step = (count + num_parts - 1) // num_parts
    return min(step * (part_index + 1), count) - min(step * part_index, count)


def _read_error(source, error):
    """A DataError for an MXNetError raised while an iterator read ``source = (rec, idx)``."""
    rec, idx = source or ('record file', None)
    if idx and len(read_index(rec, idx)) <= _MAX_SEARCH:
        check_record_file(rec, idx, max_decode=_MAX_SEARCH)   # raises naming the record
    message = str(error).strip().splitlines()[-1].replace('MXNetError: ', '')
    return DataError('%s: reading failed, an image may not decode (%s)' % (rec, message))


def _record_iter(source, **kwargs):
    """An ``ImageRecordIter`` over ``source = (rec, idx)`` that remembers its files."""
    try:
        data_iter = mx.io.ImageRecordIter(path_imgrec=source[0], path_imgidx=source[1], **kwargs)
    except mx.base.MXNetError as error:   # it reads its first batch at once
        raise _read_error(source, error) from None
    data_iter.source = source
    return data_iter


def imagenet_rec_iters(rec_train, rec_train_idx, rec_val, rec_val_idx, batch_size,
                       input_size=224, crop_ratio=_DEFAULT.crop_ratio, num_workers=4, num_parts=1,
                       part_index=0, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, seed=0,
                       min_random_area=0.08, mirror=True):
    """``mx.io.ImageRecordIter`` s for training and validation with the ImageNet recipe.

    Parameters
    ----------
    rec_train, rec_train_idx, rec_val, rec_val_idx : str or None
        RecordIO files and their indexes; a ``None`` record file gives ``None``
        for that iterator. Check them first with :func:`check_record_file`.
    batch_size : int
        Samples per batch (of this worker).
    input_size : int
        Side of the square network input.
    crop_ratio : float
        Validation centre crop as a fraction of the resized shorter side.
    num_workers : int
        Decoding/augmentation threads per iterator.
    num_parts, part_index : int
        Read only part ``part_index`` of ``num_parts`` parts (one per worker).
    mean, std : tuple of 3 float
        RGB normalisation (0-255 scale).
    seed : int
        Seed of the shuffling and of the augmentations.
    min_random_area : float
        Smallest area fraction of the training crops (the recipe: 0.08).
    mirror : bool
        Random horizontal flips in training (the recipe: True).

    Returns
    -------
    (mx.io.DataIter or None, mx.io.DataIter or None)
        ``(train_iter, val_iter)``, to be read through :func:`batches`.
        Training batches are always full (MXNet's ``round_batch``: the last one
        is completed from the next epoch's samples) and every part gives the same
        number of batches per epoch, ``train_iter.num_batches`` (so that
        ``dist_sync`` workers stay in step). Validation covers this part's
        ``val_iter.num_samples`` samples exactly once per epoch.
    """
    common = dict(preprocess_threads=num_workers, batch_size=batch_size,
                  data_shape=(3, input_size, input_size),
                  mean_r=mean[0], mean_g=mean[1], mean_b=mean[2],
                  std_r=std[0], std_g=std[1], std_b=std[2],
                  num_parts=num_parts, part_index=part_index,
                  verbose=False)   # else one ImageRecordIOParser2 line per iterator
    train_iter = val_iter = None
    if rec_train is not None:
        count = len(read_index(rec_train, rec_train_idx))
        train_iter = _record_iter(
            (rec_train, rec_train_idx), shuffle=True, seed=seed,
            seed_aug=seed, rand_mirror=mirror, random_resized_crop=True,
            max_aspect_ratio=4. / 3., min_aspect_ratio=3. / 4.,
            max_random_area=1, min_random_area=min_random_area,
            brightness=_JITTER, saturation=_JITTER, contrast=_JITTER, pca_noise=_LIGHTING,
            **common)
        smallest = min(_part_size(count, num_parts, part) for part in range(num_parts))
        train_iter.num_batches = (smallest + batch_size - 1) // batch_size
    if rec_val is not None:
        count = len(read_index(rec_val, rec_val_idx))
        # round_batch=False: every epoch starts at the first sample; the last batch
        # is then filled with garbage that MXNet does not mark as ``pad``, and
        # ``batches`` cuts it off by count.
        val_iter = _record_iter((rec_val, rec_val_idx), shuffle=False, round_batch=False,
                                resize=_resize_for(input_size, crop_ratio), **common)
        val_iter.num_samples = _part_size(count, num_parts, part_index)
    return train_iter, val_iter


#: Images with a shorter side below this are upscaled to it before the transforms
#: (``RandomResizedCrop`` fails on a side of one pixel).
_MIN_SIDE = 8


class _CheckedImageFolder(ImageFolderDataset):
    """An ``ImageFolderDataset`` whose undecodable images raise a DataError naming the file,
    and whose tiny images are upscaled (shorter side :data:`_MIN_SIDE`)."""

    def __getitem__(self, idx):
        try:
            image, label = super().__getitem__(idx)
        except mx.base.MXNetError:
            raise DataError('%s: image does not decode' % self.items[idx][0]) from None
        if min(image.shape[:2]) < _MIN_SIDE:
            image = mx.image.resize_short(image, _MIN_SIDE)
        return image, label


class _PartSampler(gluon.data.sampler.Sampler):
    """Every ``num_parts``-th sample from ``part_index`` on.

    Interleaved rather than contiguous parts, so that each worker of a
    class-sorted folder still sees every class. For training (``shuffle``) the
    parts are cut to equal size, so that ``dist_sync`` workers stay in step.
    """

    def __init__(self, length, num_parts=1, part_index=0, shuffle=False):
        end = length - length % num_parts if shuffle else length
        self._indices = list(range(part_index, end, num_parts))
        self._shuffle = shuffle

    def __iter__(self):
        indices = list(self._indices)
        if self._shuffle:
            random.shuffle(indices)
        return iter(indices)

    def __len__(self):
        return len(self._indices)


class _Chain:
    """The transforms applied in turn, each imperatively.

    Not ``transforms.Compose``: it hybridizes its blocks, and the loaders' worker threads
    then build one cached graph at once (``AttributeError`` in ``name_scope``).
    """

    def __init__(self, blocks):
        self._blocks = blocks

    def __call__(self, image):
        for block in self._blocks:
            image = block(image)
        return image


def image_folder_loaders(data_dir, batch_size, input_size=224, crop_ratio=_DEFAULT.crop_ratio,
                         num_workers=4, num_parts=1, part_index=0, mean=IMAGENET_MEAN_RGB,
                         std=IMAGENET_STD_RGB,
                         min_random_area=0.08, mirror=True):
    """Gluon ``DataLoader`` s over ``data_dir/train`` and ``data_dir/val`` class folders.

    The transforms are GluonCV's (``RandomResizedCrop``, ``RandomFlipLeftRight``,
    ``RandomColorJitter(0.4, 0.4, 0.4)``, ``RandomLighting(0.1)``; validation
    ``Resize(ceil(input_size / crop_ratio), keep_ratio=True)``, ``CenterCrop``),
    then ``ToTensor`` and ``Normalize`` with ``mean/255, std/255``.

    Parameters
    ----------
    data_dir : str
        Folder with ``train/`` and ``val/``, each with one sub-folder per class
        (sorted names are the class numbers, as ``ImageFolderDataset`` does).
    batch_size, input_size, crop_ratio, num_workers, num_parts, part_index, mean, std
    min_random_area, mirror
        As in :func:`imagenet_rec_iters` (``num_workers`` worker threads: worker
        processes, MXNet's default, can hang the command at its exit or on SIGTERM
        while the pool respawns them; threads decode as fast, as OpenCV and MXNet
        release the GIL).

    Returns
    -------
    (gluon.data.DataLoader, gluon.data.DataLoader)
        Training (shuffled, incomplete last batch dropped) and validation
        (in order, every sample) loaders of ``(data, label)`` batches.
        An image that fails to decode raises :class:`DataError` naming it.
    """
    normalize = transforms.Normalize([m / 255. for m in mean], [s / 255. for s in std])
    train_transform = _Chain(
        [transforms.RandomResizedCrop(input_size, scale=(min_random_area, 1.0))]
        + ([transforms.RandomFlipLeftRight()] if mirror else [])
        + [transforms.RandomColorJitter(brightness=_JITTER, contrast=_JITTER, saturation=_JITTER),
           transforms.RandomLighting(_LIGHTING),
           transforms.ToTensor(),
           normalize])
    val_transform = _Chain([
        transforms.Resize(_resize_for(input_size, crop_ratio), keep_ratio=True),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        normalize,
    ])
    loaders = []
    for split, transform, shuffle in (('train', train_transform, True),
                                      ('val', val_transform, False)):
        dataset = _CheckedImageFolder(os.path.join(data_dir, split)).transform_first(transform)
        sampler = _PartSampler(len(dataset), num_parts, part_index, shuffle)
        loaders.append(gluon.data.DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
            thread_pool=True, last_batch='discard' if shuffle else 'keep'))
    return tuple(loaders)


def val_folder_loader(data_dir, batch_size, input_size=224, crop_ratio=_DEFAULT.crop_ratio,
                      num_workers=4, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB):
    """The validation loader of :func:`image_folder_loaders` alone: ``data_dir/val`` (no
    ``train/`` needed), in order, every sample, on worker threads (as there)."""
    transform = _Chain([
        transforms.Resize(_resize_for(input_size, crop_ratio), keep_ratio=True),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        transforms.Normalize([m / 255. for m in mean], [s / 255. for s in std]),
    ])
    dataset = _CheckedImageFolder(os.path.join(data_dir, 'val')).transform_first(transform)
    return gluon.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                 sampler=_PartSampler(len(dataset), 1, 0, False),
                                 thread_pool=True)


def batches(source):
    """``(data, label)`` NDArray batches of one epoch from a DataIter or a DataLoader.

    Parameters
    ----------
    source : mx.io.DataIter or gluon.data.DataLoader
        A DataIter is reset first, so every call is one full epoch. A training
        iterator of :func:`imagenet_rec_iters` stops after its ``num_batches``
        full batches; a validation one after its ``num_samples`` samples (the
        last batch cut to size).

    Yields
    ------
    (mx.nd.NDArray, mx.nd.NDArray)
        Images ``(N, 3, H, W)`` and labels ``(N,)``, both float32 (from either
        kind of source, as ``ImageRecordIter`` gives them).

    Raises
    ------
    DataError
        The iterator fails to read or decode its record file (named, and the
        record too when the file has at most 50,000 records).
    """
    if not isinstance(source, mx.io.DataIter):
        for data, label in source:
            yield data, label.astype('float32', copy=False)
        return
    num_batches = getattr(source, 'num_batches', None)
    remaining = getattr(source, 'num_samples', None)
    source.reset()
    for _ in itertools.count() if num_batches is None else range(num_batches):
        try:
            batch = source.next()
        except StopIteration:
            return
        except mx.base.MXNetError as error:
            raise _read_error(getattr(source, 'source', None), error) from None
        data, label = batch.data[0], batch.label[0]
        if remaining is not None:
            if remaining <= 0:
                return
            if data.shape[0] > remaining:
                data, label = data[:remaining], label[:remaining]
            remaining -= data.shape[0]
        yield data, label


def split_batch(data, ctx):
    """``data`` split along its first axis over the devices ``ctx``, one slice each.

    A batch of fewer items than devices goes to its first ``len(data)``
    devices (``gluon.utils.split_and_load`` would give the others empty
    slices, which no operator takes); otherwise as ``split_and_load`` with
    ``even_split=False``.

    Parameters
    ----------
    data : mx.nd.NDArray
    ctx : list of mx.Context

    Returns
    -------
    list of mx.nd.NDArray
    """
    return gluon.utils.split_and_load(data, ctx[:max(1, data.shape[0])], even_split=False)


#: What :func:`check_data` found: ``kind`` is ``'rec'`` or ``'folder'``;
#: ``num_val`` is 0 without validation data; ``num_classes`` is ``max label + 1``;
#: ``class_names``: the class folders, or the ``synset.txt`` beside a ``.rec`` (else None).
DataInfo = collections.namedtuple('DataInfo', 'kind num_train num_val num_classes class_names')


class DataSource(typing.NamedTuple):
    """Where a training run's data are: RecordIO files (used when ``rec_train`` is set),
    else a folder with ``train/`` and ``val/`` class folders."""
    rec_train: typing.Optional[str] = None
    rec_train_idx: typing.Optional[str] = None
    rec_val: typing.Optional[str] = None
    rec_val_idx: typing.Optional[str] = None
    data_dir: typing.Optional[str] = None

    def describe(self):
        """What a training recipe records as its data: the training file or folder."""
        return os.path.abspath(self.rec_train or self.data_dir or '')


def synset_paths(rec):
    """Where the class names of the RecordIO file ``rec`` may be, in the order they are looked
    for: ``STEM.synset.txt`` (``STEM``: the path without ``.rec``), the same without a
    ``_train``/``_val`` suffix (what ``prepare`` writes for both parts), ``synset.txt`` in its
    folder (ImageNet's convention)."""
    stem = os.path.splitext(os.path.abspath(rec))[0]
    paths = [stem + SYNSET_SUFFIX]
    for part in ('_train', '_val'):
        if stem.endswith(part):
            paths.append(stem[:-len(part)] + SYNSET_SUFFIX)
    paths.append(os.path.join(os.path.dirname(stem), 'synset.txt'))
    return paths


def record_synset(rec):
    """Class names of a RecordIO file (one name per line, in label order, in the first of
    :func:`synset_paths` that exists), or None."""
    for path in synset_paths(rec):
        if os.path.isfile(path):
            with open(path) as handle:
                names = [line.strip() for line in handle if line.strip()]
            return names or None
    return None


def _folder_split(folder, max_decode):
    """The ``ImageFolderDataset`` of a checked class folder (its images sampled for decoding)."""
    if not os.path.isdir(folder):
        raise DataError('%s: image folder does not exist' % folder)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError('%s: image folder is not readable' % folder)
    dataset = ImageFolderDataset(folder)
    if not dataset.items:
        raise DataError('%s: no class folders with .jpg/.jpeg/.png images' % folder)
    for position in sample_positions(len(dataset.items), max_decode):
        path = dataset.items[position][0]
        if cv2.imread(path, cv2.IMREAD_COLOR) is None:
            raise DataError('%s: image does not decode' % path)
    return dataset


def check_val_folder(data_dir, max_decode=1000):
    """Validate ``data_dir/val`` class folders (for evaluation: no ``train/`` needed).

    Returns
    -------
    list of str
        The class names (the sub-folders, sorted).

    Raises
    ------
    DataError
    """
    if not os.path.isdir(data_dir):
        raise DataError('%s: data folder does not exist' % data_dir)
    return list(_folder_split(os.path.join(data_dir, 'val'), max_decode).synsets)


def check_image_folder(data_dir, max_decode=1000):
    """Validate ``data_dir/train`` and ``data_dir/val`` class folders.

    Parameters
    ----------
    data_dir : str
        Folder with ``train/`` and ``val/`` (one sub-folder per class).
    max_decode : int
        Images decoded at most per split (all of a small split, else evenly spread ones).

    Returns
    -------
    (list of str, int, int)
        The class names, and the numbers of training and validation images.

    Raises
    ------
    DataError
        A folder is missing, unreadable or empty, an image does not decode, or
        ``val/`` has class folders that ``train/`` lacks.
    """
    if not os.path.isdir(data_dir):
        raise DataError('%s: data folder does not exist' % data_dir)
    train = _folder_split(os.path.join(data_dir, 'train'), max_decode)
    val = _folder_split(os.path.join(data_dir, 'val'), max_decode)
    unknown = sorted(set(val.synsets) - set(train.synsets))
    if unknown or val.synsets != train.synsets[:len(val.synsets)]:
        raise DataError('%s: class folders %s do not match those of %s'
                        % (os.path.join(data_dir, 'val'), ', '.join(unknown or val.synsets[:3]),
                           os.path.join(data_dir, 'train')))
    return list(train.synsets), len(train.items), len(val.items)


def _check_records(rec, idx, max_decode):
    check_record_file(rec, idx, max_decode)
    labels = record_labels(rec, idx)
    return len(labels), count_classes(labels, rec)


def check_data(source, batch_size, classes=None, num_parts=1, max_decode=1000):
    """Validate a training run's data before any model is built.

    Parameters
    ----------
    source : DataSource
    batch_size : int
        Images per step of one worker (over all of its devices).
    classes : int, optional
        Number of classes the run expects (None: take it from the data).
    num_parts : int
        Number of workers that share the training data (``kv.num_workers``).
    max_decode : int
        Images decoded at most per file or folder (see :func:`check_record_file`).

    Returns
    -------
    DataInfo

    Raises
    ------
    DataError
        Missing or unreadable rec/idx/folder, a rec without idx, an index past
        the end of its rec, an image that does not decode, fewer training samples
        per worker than one batch, a single class, or a number of classes in the
        data other than ``classes``.
    """
    class_names = None
    if source.rec_train:
        kind, where = 'rec', source.rec_train
        num_train, num_classes = _check_records(where, source.rec_train_idx, max_decode)
        num_val = 0
        if source.rec_val:
            num_val, val_classes = _check_records(source.rec_val, source.rec_val_idx,
                                                  max_decode)
            if val_classes > num_classes:
                raise DataError('%s: has labels up to %d but %s only up to %d'
                                % (source.rec_val, val_classes - 1, where, num_classes - 1))
        class_names = record_synset(where)
        if class_names is not None and len(class_names) < num_classes:
            raise DataError('the class names of %s are %d, but it has %d classes'
                            % (where, len(class_names), num_classes))
    elif source.data_dir:
        kind, where = 'folder', source.data_dir
        class_names, num_train, num_val = check_image_folder(where, max_decode)
        num_classes = len(class_names)
    else:
        raise DataError('no training data: give RecordIO files or a class folder')
    if num_classes < 2:
        raise DataError('%s: the training data hold one class only; a classifier needs at '
                        'least 2' % where)
    per_worker = num_train // max(1, num_parts)
    if per_worker < batch_size:
        raise DataError('%s: %d training samples%s, fewer than one batch of %d'
                        % (where, per_worker, ' per worker' if num_parts > 1 else '', batch_size))
    if classes and classes != num_classes:
        raise DataError('%s: the data have %d classes, not the %d asked for'
                        % (where, num_classes, classes))
    if class_names is not None:
        class_names = class_names[:num_classes]
    return DataInfo(kind, num_train, num_val, num_classes, class_names)
