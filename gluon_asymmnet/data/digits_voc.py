"""A detection set made from the embedded digits, in Pascal VOC's on-disk layout.

Each canvas holds several of scikit-learn's handwritten digits
(:func:`~gluon_asymmnet.data.digits.digits_images`) at random scales and places
on a cluttered background (noise, lines, rectangles and blobs of random
colours), drawn with a fixed seed.  :func:`prepare_digits_voc` writes, once::

    <root>/VOC2007/JPEGImages/<id>.jpg
    <root>/VOC2007/Annotations/<id>.xml       # VOC's XML: size, object name, bndbox
    <root>/VOC2007/ImageSets/Main/{train,val}.txt
    <root>/digits_voc.json                    # present only in a complete build

so GluonCV's ``VOCDetection`` reads it (:func:`digits_voc_dataset`), as it reads
the real VOC.  Train and validation canvases use disjoint digit scans.
"""
import json
import os
import shutil
import tempfile
import typing
from xml.etree import ElementTree

import cv2
import numpy as np

from .digits import digits_images

__all__ = ['DigitsVOCConfig', 'DIGIT_CLASSES', 'prepare_digits_voc', 'digits_voc_dataset']

#: Class names (GluonCV's VOCDetection takes lowercase letters only).
DIGIT_CLASSES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight',
                 'nine')
_MANIFEST = 'digits_voc.json'


class DigitsVOCConfig(typing.NamedTuple):
    """What the generated detection set holds."""
    size: int = 128            #: canvas side, pixels
    num_train: int = 600       #: training canvases
    num_val: int = 150         #: validation canvases
    min_digits: int = 2        #: digits per canvas, at least
    max_digits: int = 4        #: digits per canvas, at most
    min_scale: int = 20        #: digit side, pixels
    max_scale: int = 48
    seed: int = 0


def _background(rng, size):
    canvas = rng.uniform(0, 60, (size, size, 3)).astype(np.uint8)
    for _ in range(rng.randint(3, 8)):
        colour = tuple(int(c) for c in rng.randint(30, 160, 3))
        p, q = rng.randint(0, size, 2), rng.randint(0, size, 2)
        kind = rng.randint(3)
        if kind == 0:
            cv2.line(canvas, tuple(int(v) for v in p), tuple(int(v) for v in q), colour,
                     int(rng.randint(1, 3)))
        elif kind == 1:
            cv2.rectangle(canvas, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, 1)
        else:
            cv2.circle(canvas, tuple(int(v) for v in p), int(rng.randint(3, size // 6)), colour, -1)
    return canvas


def _overlaps(box, boxes):
    for other in boxes:
        w = min(box[2], other[2]) - max(box[0], other[0])
        h = min(box[3], other[3]) - max(box[1], other[1])
        if w > 0 and h > 0:
            return True
    return False


def _canvas(rng, config, images, labels, pool):
    canvas = _background(rng, config.size)
    objects = []
    for _ in range(rng.randint(config.min_digits, config.max_digits + 1)):
        for _attempt in range(20):
            side = int(rng.randint(config.min_scale, config.max_scale + 1))
            x, y = (int(v) for v in rng.randint(0, config.size - side + 1, 2))
            box = (x, y, x + side, y + side)
            if not _overlaps(box, [o[1] for o in objects]):
                break
        else:
            continue
        index = int(rng.choice(pool))
        digit = cv2.resize(images[index], (side, side), interpolation=cv2.INTER_LINEAR)
        colour = rng.uniform(0.6, 1.0, 3)
        ink = (digit.astype(np.float32) / 255.0) * colour * 255.0
        region = canvas[y:y + side, x:x + side].astype(np.float32)
        canvas[y:y + side, x:x + side] = np.maximum(region, ink).astype(np.uint8)
        # the box of the ink, as a VOC annotator would draw it
        ys, xs = np.nonzero(digit[..., 0] > 64)
        objects.append((DIGIT_CLASSES[labels[index]],
                        (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()),
                         y + int(ys.max()))))
    return canvas, objects


def _annotation(image_id, size, objects):
    root = ElementTree.Element('annotation')
    ElementTree.SubElement(root, 'filename').text = image_id + '.jpg'
    sizes = ElementTree.SubElement(root, 'size')
    for tag, value in (('width', size), ('height', size), ('depth', 3)):
        ElementTree.SubElement(sizes, tag).text = str(value)
    for name, (xmin, ymin, xmax, ymax) in objects:
        obj = ElementTree.SubElement(root, 'object')
        ElementTree.SubElement(obj, 'name').text = name
        ElementTree.SubElement(obj, 'difficult').text = '0'
        box = ElementTree.SubElement(obj, 'bndbox')
        # VOC's pixel indices start at 1
        for tag, value in (('xmin', xmin), ('ymin', ymin), ('xmax', xmax), ('ymax', ymax)):
            ElementTree.SubElement(box, tag).text = str(value + 1)
    return ElementTree.tostring(root, encoding='unicode')


def prepare_digits_voc(root, config=DigitsVOCConfig()):
    """Build (once) the detection set under ``root``; return its manifest.

    Parameters
    ----------
    root : str
    config : DigitsVOCConfig

    Returns
    -------
    dict
        The config it was built with and the number of images and objects per split.

    Raises
    ------
    ValueError
        ``root`` holds a set built with another config, or something else.
    """
    manifest_path = os.path.join(root, _MANIFEST)
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest['config'] != config._asdict():
            raise ValueError('%s holds a digits detection set built with %s, not %s'
                             % (root, manifest['config'], config._asdict()))
        return manifest
    images, labels = digits_images(size=32)
    rng = np.random.RandomState(config.seed)
    order = rng.permutation(len(images))
    pools = {'train': order[:int(0.8 * len(order))], 'val': order[int(0.8 * len(order)):]}
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.digits_voc-', dir=os.path.dirname(os.path.abspath(root)))
    voc = os.path.join(tmp, 'VOC2007')
    for folder in ('JPEGImages', 'Annotations', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(voc, folder))
    counts = {}
    for split, number in (('train', config.num_train), ('val', config.num_val)):
        ids, num_objects = [], 0
        for n in range(number):
            image_id = '%s%05d' % (split, n)
            canvas, objects = _canvas(rng, config, images, labels, pools[split])
            cv2.imwrite(os.path.join(voc, 'JPEGImages', image_id + '.jpg'),
                        canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            with open(os.path.join(voc, 'Annotations', image_id + '.xml'), 'w') as f:
                f.write(_annotation(image_id, config.size, objects))
            ids.append(image_id)
            num_objects += len(objects)
        with open(os.path.join(voc, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
        counts[split] = {'images': number, 'objects': num_objects}
    manifest = {'config': config._asdict(), 'counts': counts}
    with open(os.path.join(tmp, _MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1)
    try:
        os.rename(tmp, root)
    except OSError:   # built meanwhile by another process, or root holds something else
        shutil.rmtree(tmp)
        if not os.path.exists(manifest_path):
            raise ValueError('%s exists and is no digits detection set' % root)
        return prepare_digits_voc(root, config)
    return manifest


def digits_voc_dataset(root, split):
    """GluonCV's ``VOCDetection`` over split ``'train'`` or ``'val'`` of the set at ``root``,
    with the digits as its classes."""
    from gluoncv.data import VOCDetection

    class DigitsVOC(VOCDetection):
        CLASSES = DIGIT_CLASSES

    return DigitsVOC(root=root, splits=((2007, split),))
