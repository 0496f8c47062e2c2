"""The digits detection set in VOC's layout, read by GluonCV's VOCDetection, and the
demo's command line."""
import os

import numpy as np
import pytest

from gluon_asymmnet.data.digits_voc import (DIGIT_CLASSES, DigitsVOCConfig, digits_voc_dataset,
                                            prepare_digits_voc)
from helpers import assert_one_line_error, run_cli

SMALL = DigitsVOCConfig(size=64, num_train=6, num_val=3, min_scale=12, max_scale=24)


def test_gluoncv_reads_the_digits_in_vocs_layout(tmp_path):
    root = str(tmp_path / 'digits_voc')
    manifest = prepare_digits_voc(root, SMALL)
    for folder in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        assert os.path.isdir(os.path.join(root, 'VOC2007', folder))
    assert prepare_digits_voc(root, SMALL) == manifest   # built once
    objects = 0
    for split, number in (('train', 6), ('val', 3)):
        dataset = digits_voc_dataset(root, split)
        assert len(dataset) == number and dataset.classes == DIGIT_CLASSES
        for i in range(number):
            image, label = dataset[i]
            assert image.shape == (64, 64, 3)
            assert 2 <= len(label) <= 4   # SMALL leaves room for every digit
            boxes, ids = label[:, :4], label[:, 4]
            assert (boxes >= 0).all() and (boxes < 64).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()
            assert ((ids >= 0) & (ids < 10)).all() and (label[:, 5] == 0).all()
            objects += len(label)
    assert objects == sum(c['objects'] for c in manifest['counts'].values())
    with pytest.raises(ValueError, match='built with'):
        prepare_digits_voc(root, SMALL._replace(seed=1))


def test_a_seed_gives_one_set(tmp_path):
    first, second = (str(tmp_path / name) for name in ('a', 'b'))
    prepare_digits_voc(first, SMALL)
    prepare_digits_voc(second, SMALL)
    for name in ('train00000', 'val00002'):
        a, b = (digits_voc_dataset(root, name[:-5])[int(name[-1])][1] for root in (first, second))
        np.testing.assert_array_equal(a, b)


def test_demo_refuses_bad_input_in_one_line(tmp_path):
    status, _, stderr = run_cli('gluon_asymmnet.detection_demo', '--epochs', '0',
                                '--out', tmp_path)
    assert_one_line_error(status, stderr, '--epochs')


@pytest.mark.slow
def test_demo_trains_evaluates_exports_draws_and_rereports(tmp_path):
    from gluon_asymmnet.detection_demo import train_demo
    data = DigitsVOCConfig(num_train=32, num_val=8)
    state = train_demo(str(tmp_path), 1, batch_size=16, data=data)
    assert state['epoch'] == 1 and len(state['log']) == 1
    assert set(state['untrained']) == set(state['trained']) == set(DIGIT_CLASSES) | {'mAP'}
    assert state['export']['reloaded_identical'] and state['val_images'] == 8
    assert os.path.getsize(state['figure']) > 0
    again = train_demo(str(tmp_path), 1, batch_size=16, data=data)   # only re-reports
    assert again['log'] == state['log'] and again['trained'] == state['trained']
