"""Data: the digits demo set, RecordIO and image-folder pipelines, input checks, im2rec packing."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mxnet import recordio

from gluon_asymmnet.data import (DataError, batches, check_data, check_image_folder, DataSource,
                                 check_record_file, image_folder_loaders, imagenet_rec_iters,
                                 prepare_digits, record_labels, record_synset)
from gluon_asymmnet.model_zoo import IMAGENET_MEAN_RGB as MEAN_RGB, IMAGENET_STD_RGB as STD_RGB
from gluon_asymmnet.data.prepare import main as prepare_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('digits')))


def write_records(prefix, count, bad=None, size=8):
    """``count`` plain images whose label is their position; record ``bad`` is not an image."""
    writer = recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    for position in range(count):
        header = recordio.IRHeader(0, float(position), position, 0)
        image = np.full((size, size, 3), position % 256, np.uint8)
        payload = (recordio.pack(header, b'not an image at all') if position == bad
                   else recordio.pack_img(header, image, img_fmt='.png'))
        writer.write_idx(position, payload)
    writer.close()
    return prefix + '.rec', prefix + '.idx'


def labels_of(source):
    return [int(label) for _, labels in batches(source) for label in labels.asnumpy()]


def one_line_error(function, *args, **kwargs):
    with pytest.raises(DataError) as error:
        function(*args, **kwargs)
    message = str(error.value)
    assert '\n' not in message
    return message


# -- digits -------------------------------------------------------------------------------

def test_digits_counts_classes_and_stratified_split(digits):
    assert digits.classes == [str(digit) for digit in range(10)]
    assert (digits.num_train, digits.num_val) == (1437, 360)
    train = np.bincount(record_labels(digits.train_rec, digits.train_idx).astype(int))
    val = np.bincount(record_labels(digits.val_rec, digits.val_idx).astype(int))
    assert train.sum() + val.sum() == 1797 and len(train) == len(val) == 10
    assert np.all(np.abs(val - 0.2 * (train + val)) <= 1)         # stratified 80/20
    for split, counts in (('train', train), ('val', val)):
        folder = os.path.join(os.path.dirname(digits.train_rec), split)
        assert [len(os.listdir(os.path.join(folder, name))) for name in digits.classes] \
            == counts.tolist()


def test_digits_images_are_the_scikit_learn_scans(digits):
    from sklearn.datasets import load_digits
    scans = load_digits()
    assert check_record_file(digits.train_rec, digits.train_idx, max_decode=2000) == 1437
    reader = recordio.MXIndexedRecordIO(digits.val_idx, digits.val_rec, 'r')
    for key in (0, 100, 359):
        header, image = recordio.unpack_img(reader.read_idx(key))
        assert image.shape == (32, 32, 3)
        assert (image[..., 0] == image[..., 2]).all()               # grey as RGB
        small = cv2.resize(image[..., 0], (8, 8), interpolation=cv2.INTER_AREA)
        assert np.corrcoef(small.ravel(), scans.images[header.id2].ravel())[0, 1] > 0.95
        assert header.label == scans.target[header.id2]
        png = os.path.join(digits.val_dir, str(int(header.label)), '%05d.png' % key)
        assert (cv2.imread(png) == image).all()                     # folder == records
    reader.close()


def test_digits_second_call_reuses_the_build(digits):
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    before = os.stat(digits.train_rec)
    assert prepare_digits(root) == digits
    after = os.stat(digits.train_rec)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert sorted(os.listdir(root)) == ['digits-32']                # no temporary folders left


def test_digits_two_processes_at_once(tmp_path):
    code = ('import sys; from gluon_asymmnet.data import prepare_digits; '
            'print(prepare_digits(sys.argv[1], size=16).num_train)')
    env = dict(os.environ, PYTHONPATH=ROOT)
    runs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ['1437', '1437']
    assert sorted(os.listdir(tmp_path)) == ['digits-16']
    data = prepare_digits(str(tmp_path), size=16)
    assert check_record_file(data.val_rec, data.val_idx) == 360


def test_digits_root_not_writable(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert 'cannot write' in one_line_error(prepare_digits, str(blocker / 'sub'))


# -- RecordIO iterators --------------------------------------------------------------------

def test_rec_iters_shapes_labels_and_exact_validation(digits):
    train, val = imagenet_rec_iters(digits.train_rec, digits.train_idx, digits.val_rec,
                                    digits.val_idx, batch_size=64, input_size=32, num_workers=1)
    shapes = [(data.shape, label.shape) for data, label in batches(train)]
    assert len(shapes) == train.num_batches == 23                   # ceil(1437 / 64), all full
    assert set(shapes) == {((64, 3, 32, 32), (64,))}
    expected = record_labels(digits.val_rec, digits.val_idx).astype(int).tolist()
    assert labels_of(val) == expected
    assert labels_of(val) == expected                               # every epoch, from the start
    # validation: resize to ceil(32 / 0.875) = 37, centre crop 32, normalise
    reader = recordio.MXIndexedRecordIO(digits.val_idx, digits.val_rec, 'r')
    _, image = recordio.unpack_img(reader.read_idx(0))
    reader.close()
    resized = cv2.resize(image[..., ::-1], (37, 37), interpolation=cv2.INTER_LINEAR)
    crop = resized[2:34, 2:34].astype(np.float32)
    expected_image = ((crop - np.array(MEAN_RGB)) / np.array(STD_RGB)).transpose(2, 0, 1)
    first, _ = next(batches(val))
    np.testing.assert_allclose(first[0].asnumpy(), expected_image, atol=1e-4)


def test_rec_iters_train_augments(digits):
    train, _ = imagenet_rec_iters(digits.train_rec, digits.train_idx, None, None, 32,
                                  input_size=32, num_workers=1, seed=1)
    first = [data.asnumpy() for data, _ in batches(train)][0]
    again = [data.asnumpy() for data, _ in batches(train)][0]
    assert not np.allclose(first, again)                            # shuffled and augmented


def test_mirror_follows_the_option(tmp_path):
    prefix = str(tmp_path / 'halves')
    writer = recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 255                                              # dark left, bright right
    for position in range(64):
        writer.write_idx(position, recordio.pack_img(recordio.IRHeader(0, 0., position, 0),
                                                     image, img_fmt='.png'))
    writer.close()
    flipped = {}
    for mirror in (True, False):
        train, _ = imagenet_rec_iters(prefix + '.rec', prefix + '.idx', None, None, 64,
                                      input_size=16, num_workers=1, mirror=mirror,
                                      min_random_area=1.0)
        data = next(batches(train))[0].asnumpy().mean(axis=(1, 2))    # (N, W)
        flipped[mirror] = int((data[:, :8].mean(axis=1) > data[:, 8:].mean(axis=1)).sum())
    assert flipped[False] == 0 and 10 < flipped[True] < 54


def test_rec_iters_shards_are_disjoint_halves(tmp_path):
    rec, idx = write_records(str(tmp_path / 'unique'), 41)
    seen_train, seen_val, num_batches = [], [], []
    for part in range(2):
        train, val = imagenet_rec_iters(rec, idx, rec, idx, 4, input_size=8, num_workers=1,
                                        num_parts=2, part_index=part)
        seen_train.append(set(labels_of(train)))
        seen_val.append(labels_of(val))
        num_batches.append(sum(1 for _ in batches(train)))
    assert not seen_train[0] & seen_train[1]
    assert seen_train[0] <= set(range(21)) and seen_train[1] <= set(range(21, 41))
    assert num_batches[0] == num_batches[1] == 5                    # dist_sync stays in step
    assert seen_val == [list(range(21)), list(range(21, 41))]


def test_rec_iters_batch_larger_than_validation_data(tmp_path):
    rec, idx = write_records(str(tmp_path / 'small'), 5)
    _, val = imagenet_rec_iters(None, None, rec, idx, 16, input_size=8, num_workers=1)
    assert labels_of(val) == [0, 1, 2, 3, 4]


# -- image folders --------------------------------------------------------------------------

def test_folder_loaders_shapes_and_labels(digits):
    data_dir = os.path.dirname(digits.train_dir)
    train, val = image_folder_loaders(data_dir, 64, input_size=32, num_workers=0)
    data, label = next(batches(train))
    assert data.shape == (64, 3, 32, 32) and label.shape == (64,) and label.dtype == np.float32
    assert len(train) == 1437 // 64                                 # incomplete batch dropped
    val_labels = labels_of(val)
    assert np.bincount(val_labels).tolist() == \
        np.bincount(record_labels(digits.val_rec, digits.val_idx).astype(int)).tolist()
    assert (check_image_folder(data_dir)[1:]) == (1437, 360)


def test_folder_loaders_same_normalisation_as_records(digits):
    data_dir = os.path.dirname(digits.train_dir)
    _, val_folder = image_folder_loaders(data_dir, 360, input_size=32, num_workers=0)
    _, val_rec = imagenet_rec_iters(None, None, digits.val_rec, digits.val_idx, 360,
                                    input_size=32, num_workers=1)
    folder, _ = next(batches(val_folder))
    records, _ = next(batches(val_rec))
    # the same images in another order and another resize implementation
    assert abs(folder.mean().asscalar() - records.mean().asscalar()) < 0.02
    assert abs(folder.asnumpy().std() - records.asnumpy().std()) < 0.05


def test_folder_loaders_shard(digits):
    data_dir = os.path.dirname(digits.train_dir)
    parts = [image_folder_loaders(data_dir, 30, input_size=32, num_workers=0, num_parts=2,
                                  part_index=part)[1] for part in range(2)]
    counts = [sum(label.shape[0] for _, label in batches(part)) for part in parts]
    assert counts == [180, 180]
    assert all(len(np.unique(labels_of(part))) == 10 for part in parts)   # every class each


# -- bad input --------------------------------------------------------------------------------

def test_missing_and_unpaired_files(tmp_path):
    rec, idx = write_records(str(tmp_path / 'ok'), 4)
    assert 'does not exist' in one_line_error(check_record_file, str(tmp_path / 'no.rec'), idx)
    assert 'no.idx' in one_line_error(check_record_file, rec, str(tmp_path / 'no.idx'))
    assert 'no index file' in one_line_error(check_record_file, rec, None)
    assert 'no index file' in one_line_error(imagenet_rec_iters, rec, None, None, None, 2)
    assert 'not a file' in one_line_error(check_record_file, str(tmp_path), idx)


def test_garbage_index(tmp_path):
    rec, idx = write_records(str(tmp_path / 'g'), 4)
    with open(idx, 'w') as stream:
        stream.write('0\t0\nthis is not an index\n')
    assert 'line 2' in one_line_error(check_record_file, rec, idx)
    assert 'line 2' in one_line_error(record_labels, rec, idx)


def test_index_past_the_end(tmp_path):
    rec, idx = write_records(str(tmp_path / 'p'), 4)
    with open(idx, 'a') as stream:
        stream.write('4\t999999\n')
    message = one_line_error(check_record_file, rec, idx)
    assert 'record 4' in message and 'past the end' in message and rec in message


def test_truncated_record_file(tmp_path):
    rec, idx = write_records(str(tmp_path / 't'), 4)
    with open(rec, 'r+b') as stream:
        stream.truncate(os.path.getsize(rec) - 40)
    message = one_line_error(check_record_file, rec, idx)
    assert 'record 3' in message and 'cut off' in message


def test_index_of_another_file(tmp_path):
    rec, idx = write_records(str(tmp_path / 'a'), 4)
    with open(idx, 'w') as stream:
        stream.write('0\t2\n')                                     # not at a record start
    assert 'not a RecordIO file' in one_line_error(check_record_file, rec, idx)


def test_undecodable_record_is_named(tmp_path):
    rec, idx = write_records(str(tmp_path / 'u'), 10, bad=4)
    assert 'record 4' in one_line_error(check_record_file, rec, idx)
    assert 'record 4' in one_line_error(imagenet_rec_iters, rec, idx, None, None, 4,
                                        input_size=8, num_workers=1)
    assert 'record 4' in one_line_error(check_data, DataSource(rec_train=rec, rec_train_idx=idx),
                                        batch_size=2)


def test_undecodable_folder_image_is_named(tmp_path, digits):
    data_dir = tmp_path / 'images'
    for split in ('train', 'val'):
        for name in ('a', 'b'):
            (data_dir / split / name).mkdir(parents=True)
            cv2.imwrite(str(data_dir / split / name / '0.png'), np.zeros((8, 8, 3), np.uint8))
    bad = data_dir / 'val' / 'b' / '1.jpg'
    bad.write_bytes(b'garbage')
    assert str(bad) in one_line_error(check_image_folder, str(data_dir))
    _, val = image_folder_loaders(str(data_dir), 4, input_size=8, num_workers=0)
    assert str(bad) in one_line_error(lambda: list(batches(val)))


def test_folder_errors(tmp_path):
    assert 'does not exist' in one_line_error(check_image_folder, str(tmp_path / 'none'))
    (tmp_path / 'train' / 'a').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'train' / 'a' / '0.png'), np.zeros((8, 8, 3), np.uint8))
    assert 'val' in one_line_error(check_image_folder, str(tmp_path))
    (tmp_path / 'val' / 'z').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'val' / 'z' / '0.png'), np.zeros((8, 8, 3), np.uint8))
    assert 'do not match' in one_line_error(check_image_folder, str(tmp_path))


def test_check_data(digits, tmp_path):
    source = DataSource(digits.train_rec, digits.train_idx, digits.val_rec, digits.val_idx)
    info = check_data(source, 64, classes=10)
    assert info[:4] == ('rec', 1437, 360, 10)
    folder = DataSource(data_dir=os.path.dirname(digits.train_dir))
    assert check_data(folder, 8) == ('folder', 1437, 360, 10, [str(d) for d in range(10)])
    message = one_line_error(check_data, source, 64, classes=1000)
    assert '10 classes' in message and '1000' in message
    assert 'fewer than one batch' in one_line_error(check_data, source, 1500)
    assert 'per worker' in one_line_error(check_data, source, 400, num_parts=4)
    assert 'no training data' in one_line_error(check_data, DataSource(), 1)


def test_record_class_names_come_from_the_synset_beside_the_rec(tmp_path):
    rec, idx = write_records(str(tmp_path / 'set_train'), 3)   # labels 0, 1, 2
    source = DataSource(rec_train=rec, rec_train_idx=idx)
    assert check_data(source, 2).class_names is None
    (tmp_path / 'set.synset.txt').write_text('cat\ndog\nemu\n')    # what prepare writes
    assert check_data(source, 2).class_names == ['cat', 'dog', 'emu']
    (tmp_path / 'set.synset.txt').write_text('cat\n')
    assert 'class names' in one_line_error(check_data, source, 2)


# -- im2rec packing ----------------------------------------------------------------------------

def run_prepare(*args):
    return subprocess.run([sys.executable, '-m', 'gluon_asymmnet.data.prepare'] + list(args),
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def image_tree(root, classes=('cat', 'dog', 'emu'), per_class=4):
    rng = np.random.RandomState(0)
    for name in classes:
        os.makedirs(os.path.join(root, name))
        for number in range(per_class):
            cv2.imwrite(os.path.join(root, name, '%d.jpg' % number),
                        rng.randint(0, 255, (30, 40, 3)).astype(np.uint8))
    return root


def test_prepare_packs_with_im2rec(tmp_path):
    images = image_tree(str(tmp_path / 'images'))
    result = run_prepare(images, str(tmp_path / 'out' / 'data'), '--resize', '20', '-q')
    assert result.returncode == 0, result.stderr
    rec, idx = str(tmp_path / 'out' / 'data.rec'), str(tmp_path / 'out' / 'data.idx')
    assert os.path.isfile(str(tmp_path / 'out' / 'data.lst'))
    assert sorted(os.listdir(tmp_path / 'out')) == ['data.idx', 'data.lst', 'data.rec',
                                                    'data.synset.txt']
    assert record_synset(rec) == sorted(os.listdir(images))          # the class names travel
    assert np.bincount(record_labels(rec, idx).astype(int)).tolist() == [4, 4, 4]
    _, val = imagenet_rec_iters(None, None, rec, idx, 5, input_size=16, num_workers=1)
    shapes = [data.shape for data, _ in batches(val)]
    assert shapes == [(5, 3, 16, 16), (5, 3, 16, 16), (2, 3, 16, 16)]
    reader = recordio.MXIndexedRecordIO(idx, rec, 'r')
    _, image = recordio.unpack_img(reader.read_idx(0))
    assert min(image.shape[:2]) == 20                               # --resize reached im2rec


def test_prepare_split_and_threads(tmp_path):
    images = image_tree(str(tmp_path / 'images'), per_class=5)
    result = run_prepare(images, str(tmp_path / 'split'), '--train-ratio', '0.8',
                         '--num-thread', '2', '-q')
    assert result.returncode == 0, result.stderr
    counts = [check_record_file(str(tmp_path / ('split_%s.rec' % part)),
                                str(tmp_path / ('split_%s.idx' % part)))
              for part in ('train', 'val')]
    assert counts == [12, 3]


@pytest.mark.parametrize('case', ['missing', 'bad_image', 'flat', 'ratio', 'empty_class'])
def test_prepare_bad_input(tmp_path, capsys, case):
    images = str(tmp_path / 'images')
    options = []
    if case == 'missing':
        expected = 'does not exist'
    else:
        image_tree(images, per_class=2)
    if case == 'bad_image':
        with open(os.path.join(images, 'dog', 'broken.jpg'), 'wb') as stream:
            stream.write(b'garbage')
        expected = 'broken.jpg: image does not decode'
    elif case == 'flat':
        cv2.imwrite(os.path.join(images, 'loose.jpg'), np.zeros((8, 8, 3), np.uint8))
        expected = 'top level'
    elif case == 'ratio':
        options, expected = ['--train-ratio', '1.5'], 'train-ratio'
    elif case == 'empty_class':   # im2rec would label the classes after it one lower
        os.makedirs(os.path.join(images, 'dodo'))
        expected = 'class folder dodo has no images'
    with pytest.raises(SystemExit) as exit_:
        prepare_main([images, str(tmp_path / 'out' / 'x'), '-q'] + options)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / 'out') or os.listdir(tmp_path / 'out') == []


def test_one_pixel_images_are_upscaled_not_fatal(tmp_path):
    """A 1x1 image in a class folder trains (upscaled) instead of killing a loader worker."""
    for split in ('train', 'val'):
        for label in ('a', 'b'):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for index, side in enumerate((1, 1, 20, 20)):
                cv2.imwrite(str(folder / ('%d.jpg' % index)),
                            np.full((side, side, 3), 60 * index, np.uint8))
    train, val = image_folder_loaders(str(tmp_path), batch_size=4, input_size=32, num_workers=1)
    shapes = [data.shape for loader in (train, val) for data, _ in batches(loader)]
    assert shapes == [(4, 3, 32, 32)] * 4


def test_a_training_part_of_no_image_is_refused_up_front(tmp_path):
    from gluon_asymmnet.data.prepare import prepare_records
    for label in ('a', 'b'):
        (tmp_path / 'images' / label).mkdir(parents=True)
        for i in range(12):
            cv2.imwrite(str(tmp_path / 'images' / label / ('%d.png' % i)),
                        np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / 'out'
    message = one_line_error(prepare_records, str(tmp_path / 'images'), str(out / 'set'),
                             train_ratio=0.01)
    assert str(tmp_path / 'images') in message and '24 images' in message, message
    assert not out.exists() or not os.listdir(str(out))
