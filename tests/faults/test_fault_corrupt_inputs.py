"""Corrupt inputs: each a one-line error naming the file, a non-zero exit, no traceback.

Damaged RecordIO files (truncated, garbage, an index past the end, an image
that does not decode inside a record, no index at all) given to
``train_imagenet.py``; a parameter file cut in half or full of garbage given to
``train_imagenet.py --resume-params`` and ``python -m gluon_asymmnet.export``.
Most commands run in :class:`faultlib.CliServer` (forked from one interpreter
that has MXNet imported); one case per command also runs in a fresh
interpreter, exactly as a user starts it.
"""
import os
import shutil

import pytest
from mxnet import recordio

import faultlib
from faultlib import assert_one_line_error


def _copy(pair, folder, stem):
    os.makedirs(folder, exist_ok=True)
    rec, idx = os.path.join(folder, stem + '.rec'), os.path.join(folder, stem + '.idx')
    shutil.copy(pair[0], rec)
    shutil.copy(pair[1], idx)
    return rec, idx


def _cut(path, fraction):
    with open(path, 'rb+') as damaged:
        damaged.truncate(int(os.path.getsize(path) * fraction))


def _garbage(path, rng):
    size = os.path.getsize(path)
    with open(path, 'wb') as damaged:
        damaged.write(bytes(rng.getrandbits(8) for _ in range(size)))


def _index_past_end(rec, idx):
    with open(idx) as lines:
        entries = [line.split() for line in lines if line.strip()]
    entries[-1][1] = str(os.path.getsize(rec) + 4096)
    with open(idx, 'w') as out:
        out.writelines('%s\t%s\n' % tuple(entry) for entry in entries)


def _undecodable_image(rec, idx, rng, key=17):
    """Replace record ``key``'s JPEG by bytes that start like a JPEG and then are noise."""
    reader = recordio.MXIndexedRecordIO(idx, rec, 'r')
    records = [(k, reader.read_idx(k)) for k in reader.keys]
    reader.close()
    writer = recordio.MXIndexedRecordIO(idx, rec, 'w')
    for k, payload in records:
        if k == key:
            header, _ = recordio.unpack(payload)
            noise = b'\xff\xd8\xff\xe0' + bytes(rng.getrandbits(8) for _ in range(600))
            payload = recordio.pack(header, noise)
        writer.write_idx(k, payload)
    writer.close()


#: name -> (damage(rec, idx, rng), which file the message must name: 'rec' or 'idx')
RECORD_FAULTS = {
    '.rec truncated': (lambda rec, idx, rng: _cut(rec, 0.6), 'rec'),
    '.rec empty': (lambda rec, idx, rng: _cut(rec, 0), 'rec'),
    '.rec garbage': (lambda rec, idx, rng: _garbage(rec, rng), 'rec'),
    '.idx truncated mid-line': (lambda rec, idx, rng: _cut(idx, 0.55), 'idx'),
    '.idx garbage': (lambda rec, idx, rng: _garbage(idx, rng), 'idx'),
    '.idx points past the end of the .rec': (lambda rec, idx, rng: _index_past_end(rec, idx),
                                             'idx'),
    'undecodable JPEG inside a record': (_undecodable_image, 'rec'),
    '.idx missing': (lambda rec, idx, rng: os.remove(idx), 'idx'),
}


def _train_argv(train, val, save_dir, *extra):
    return faultlib.TRAIN + [
        '--rec-train', train[0], '--rec-train-idx', train[1], '--rec-val', val[0],
        '--rec-val-idx', val[1], '--model', faultlib.MODEL, '--input-size', '32',
        '--batch-size', '8', '--num-epochs', '1', '--save-dir', save_dir, '-j', '1'] + list(extra)


def _record(trials, fault, kind, result, names, tool):
    lines = faultlib.error_lines(result.stderr)
    good = (result.returncode != 0 and 'Traceback' not in result.stderr and len(lines) == 1
            and all(name in lines[0] for name in names))
    trials.record(fault, 'exit %d, one line naming the file' % result.returncode if good
                  else '%s: exit %d, %s' % (kind, result.returncode, 'traceback' if 'Traceback'
                                            in result.stderr else '%d lines' % len(lines)),
                  lost=0, tool=tool)


#: Every fault on the training files; two on the validation files.
RECORD_CASES = [(fault, 'train') for fault in sorted(RECORD_FAULTS)] + [
    ('undecodable JPEG inside a record', 'val'), ('.rec truncated', 'val')]


@pytest.mark.parametrize('fault,split', RECORD_CASES)
def test_damaged_record_files(fault, split, jpeg_records, tmp_path, cli, rng, trials):
    damage, culprit = RECORD_FAULTS[fault]
    good = _copy(jpeg_records, str(tmp_path / 'good'), 'good')
    bad = _copy(jpeg_records, str(tmp_path / 'bad'), 'damaged')
    damage(bad[0], bad[1], rng)
    train, val = (bad, good) if split == 'train' else (good, bad)
    argv = _train_argv(train, val, str(tmp_path / 'runs'))
    fresh_interpreter = fault == 'undecodable JPEG inside a record' and split == 'train'
    result = (faultlib.run_cli(argv, cwd=str(tmp_path)) if fresh_interpreter
              else cli.run(argv, tmp_path))
    name = os.path.basename(bad[0] if culprit == 'rec' else bad[1])
    _record(trials, 'Damaged RecordIO given to train_imagenet.py (%s)' % ', '.join(
        sorted(RECORD_FAULTS)), '%s %s' % (split, fault), result, [name], 'train_imagenet.py')
    assert_one_line_error(result, [name], codes=(2,))
    assert not os.path.exists(faultlib.run_dir_of(str(tmp_path / 'runs'), 'baseline')), \
        'a run folder was made for bad data'


PARAMS_FAULTS = {
    'cut in half': lambda path, rng: _cut(path, 0.5),
    'garbage': _garbage,
    'empty': lambda path, rng: _cut(path, 0),
}


@pytest.mark.parametrize('fault', sorted(PARAMS_FAULTS))
@pytest.mark.parametrize('command', ['train_imagenet.py --resume-params',
                                     'gluon_asymmnet.export --params-file'])
def test_damaged_params_file(command, fault, good_params, digits, tmp_path, cli, rng, trials):
    bad = str(tmp_path / 'damaged.params')
    shutil.copy(good_params, bad)
    PARAMS_FAULTS[fault](bad, rng)
    if command.startswith('train'):
        argv = _train_argv((digits.train_rec, digits.train_idx), (digits.val_rec, digits.val_idx),
                           str(tmp_path / 'runs'), '--resume-params', bad)
    else:
        argv = faultlib.EXPORT + ['--model', faultlib.MODEL, '--classes', '10', '--input-size',
                                  '32', '--params-file', bad, '--prefix', str(tmp_path / 'out')]
    fresh_interpreter = fault == 'cut in half'
    result = (faultlib.run_cli(argv, cwd=str(tmp_path)) if fresh_interpreter
              else cli.run(argv, tmp_path))
    _record(trials, 'Damaged params file (%s) given to train_imagenet.py --resume-params and '
            'export' % ', '.join(sorted(PARAMS_FAULTS)), '%s: %s' % (command, fault), result,
            ['damaged.params'], 'train_imagenet.py' if command.startswith('train') else 'export')
    assert_one_line_error(result, ['damaged.params'], codes=(2,))


# --- exported models given to eval.py ----------------------------------------------------------

#: The record faults also given to eval.py.
EVAL_RECORD_FAULTS = ('undecodable JPEG inside a record', '.rec truncated',
                      '.idx points past the end of the .rec')


@pytest.mark.parametrize('fault', EVAL_RECORD_FAULTS)
def test_damaged_record_files_given_to_eval(fault, jpeg_records, good_params, tmp_path, cli, rng,
                                            trials):
    damage, culprit = RECORD_FAULTS[fault]
    bad = _copy(jpeg_records, str(tmp_path), 'damaged')
    damage(bad[0], bad[1], rng)
    result = cli.run(faultlib.EVAL + ['--model', faultlib.MODEL, '--params-file', good_params,
                                      '--input-size', '32', '--rec-val', bad[0], '--rec-val-idx',
                                      bad[1], '--batch-size', '8', '-j', '1'], tmp_path)
    name = os.path.basename(bad[0] if culprit == 'rec' else bad[1])
    _record(trials, 'Damaged RecordIO given to eval.py (%s)' % ', '.join(EVAL_RECORD_FAULTS),
            fault, result, [name], 'eval.py')
    assert_one_line_error(result, [name], codes=(2,))


def _export(folder, classes, fmt):
    """Export the suite's model (random weights) for ``classes`` classes at 32x32."""
    import mxnet as mx
    from gluon_asymmnet import get_model
    from gluon_asymmnet.deploy.export import export_model
    net = get_model(faultlib.MODEL, classes=classes)
    net.initialize(mx.init.Xavier())
    return export_model(net, str(folder / ('classes%d' % classes)), 32, fmt=fmt)


@pytest.fixture(scope='module')
def mxnet_export(tmp_path_factory):
    """The prefix of an MXNet export (symbol/params/info) of the suite's model, 10 classes."""
    folder = tmp_path_factory.mktemp('mxnet-export')
    _export(folder, 10, 'mxnet')
    return str(folder / 'classes10')


@pytest.fixture(scope='module')
def onnx_export(tmp_path_factory):
    """An ONNX file (dynamic batch) of the suite's model for 5 classes."""
    folder = tmp_path_factory.mktemp('onnx-export')
    _export(folder, 5, 'onnx')
    return str(folder / 'classes5.onnx')


def _eval_argv(jpeg_records, *model):
    return faultlib.EVAL + list(model) + ['--rec-val', jpeg_records[0], '--rec-val-idx',
                                          jpeg_records[1], '--batch-size', '8', '-j', '1']


def _copy_export(prefix, folder):
    copy = os.path.join(folder, 'damaged')
    for suffix in ('-symbol.json', '-0000.params', '-info.json'):
        shutil.copy(prefix + suffix, copy + suffix)
    return copy


EXPORT_FAULTS = {
    'symbol JSON that is not JSON': ('-symbol.json', lambda path, rng: open(path, 'w').write(
        'this is not JSON {"nodes": [')),
    'symbol JSON cut in half': ('-symbol.json', lambda path, rng: _cut(path, 0.5)),
    'params of an export cut in half': ('-0000.params', lambda path, rng: _cut(path, 0.5)),
    'info JSON that is not JSON': ('-info.json', lambda path, rng: _cut(path, 0.5)),
}


@pytest.mark.parametrize('fault', sorted(EXPORT_FAULTS))
def test_damaged_export(fault, mxnet_export, jpeg_records, tmp_path, cli, rng, trials):
    suffix, damage = EXPORT_FAULTS[fault]
    prefix = _copy_export(mxnet_export, str(tmp_path))
    damage(prefix + suffix, rng)
    argv = _eval_argv(jpeg_records, '--model-prefix', prefix)
    fresh_interpreter = fault == 'symbol JSON that is not JSON'
    result = (faultlib.run_cli(argv, cwd=str(tmp_path)) if fresh_interpreter
              else cli.run(argv, tmp_path))
    name = os.path.basename(prefix + suffix)
    _record(trials, 'Damaged export given to eval.py --model-prefix (%s)'
            % ', '.join(sorted(EXPORT_FAULTS)), fault, result, [name], 'eval.py')
    assert_one_line_error(result, [name], codes=(2,))


def _garbage_onnx(path, rng):
    _garbage(path, rng)


ONNX_FAULTS = {
    # (damage or None, extra eval flags)
    'ONNX file of a 5-class model on 10-class data': (None, []),
    'ONNX file of a 32x32 model at --input-size 64': (None, ['--input-size', '64']),
    'ONNX file cut in half': (lambda path, rng: _cut(path, 0.5), []),
    'ONNX file of garbage': (_garbage_onnx, []),
}


@pytest.mark.parametrize('fault', sorted(ONNX_FAULTS))
def test_wrong_or_damaged_onnx(fault, onnx_export, jpeg_records, tmp_path, cli, rng, trials):
    damage, extra = ONNX_FAULTS[fault]
    onnx_file = str(tmp_path / 'other.onnx')
    shutil.copy(onnx_export, onnx_file)
    if damage is not None:
        damage(onnx_file, rng)
    result = cli.run(_eval_argv(jpeg_records, '--onnx', onnx_file) + extra, tmp_path)
    _record(trials, 'Wrong or damaged ONNX file given to eval.py --onnx (%s)'
            % ', '.join(sorted(ONNX_FAULTS)), fault, result, ['other.onnx'], 'eval.py')
    assert_one_line_error(result, ['other.onnx'], codes=(2,))


def test_params_of_another_model(jpeg_records, tmp_path, cli, trials):
    """eval.py --model asymmnet_small_0.35 with the weights of asymmnet_large_0.35."""
    import mxnet as mx
    from gluon_asymmnet import get_model
    net = get_model('asymmnet_large_0.35', classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    other = str(tmp_path / 'large.params')
    net.save_parameters(other)
    result = cli.run(_eval_argv(jpeg_records, '--model', faultlib.MODEL, '--params-file', other,
                                '--input-size', '32'), tmp_path)
    _record(trials, 'Params file of another model given to eval.py --model', 'large for small',
            result, ['large.params'], 'eval.py')
    line = assert_one_line_error(result, ['large.params'], codes=(2,))
    assert 'parameter' in line, line
