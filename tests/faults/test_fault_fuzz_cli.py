"""Property-based fuzzing of the command lines: random flags and values never give a traceback.

For ``train_imagenet.py``, ``eval.py`` and ``python -m gluon_asymmnet.`` ``export``,
``convert``, ``quantize``, ``plot`` and ``data.prepare``, hypothesis draws a few
flags (real ones with valid, borderline and nonsense values, and unknown ones)
on top of a base command that is cheap when it is valid (a 40-image RecordIO
file, one epoch; a small image tree; a metrics file of random lines). The
contract: exit status 0, or 2 with a last stderr line ``PROG: error: ...`` (for
quantize, plot and prepare: the only line); never a Python traceback, never
another status, never a hang (:data:`DEADLINE`). The examples run in
:class:`faultlib.CliServer` (forked from one interpreter that has MXNet
imported: ``runpy`` as ``python SCRIPT``/``python -m`` would); one fixed example
of train and of export also runs in a fresh interpreter.
"""
import json
import os
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import faultlib
from gluon_asymmnet.train.errors import EXIT_DIVERGED

FAULT = 'random command-line flags for %s'
NAMES = ['asymmnet_small_0.35', 'mobilenetv3_small_0.35', 'asymmnet_small', 'asymmnet_large_0.35',
         'mobilenetv2_0.25', 'mobilenetv2_asymm_0.35', 'no_such_model', '']
#: Text without path separators or NUL: random names stay inside the test's folder.
TEXT = st.text(st.sampled_from('abc019._-,: '), max_size=8)
FLOATS = st.one_of(st.floats(-2, 3, width=32), st.sampled_from(
    ['nan', 'inf', '-inf', '0', '1e30', '-0.0', 'x', '']))
INTS = st.one_of(st.integers(-2, 3), st.sampled_from(['0', '-1', '100000', '2.5', 'x', '']))
#: Integers that cannot ask for a huge amount of work (image sides, processes).
SMALL_INTS = st.one_of(st.integers(-2, 48), st.sampled_from(['0', '-1', '2.5', 'x', '']))
#: Seconds any one fuzzed command may take.
DEADLINE = 60
FLAG = None  # a flag without a value


def _value(strategy):
    return strategy.map(str)


def argv_strategy(flags, max_flags=5):
    """A list of ``[flag, value, flag, ...]`` drawn from ``flags`` (name -> value strategy)."""
    names = sorted(flags)
    return st.lists(st.sampled_from(names), max_size=max_flags, unique=True).flatmap(
        lambda chosen: st.tuples(*[
            st.just([name]) if flags[name] is FLAG else _value(flags[name]).map(
                lambda value, name=name: [name, value]) for name in chosen])).map(
        lambda parts: [token for part in parts for token in part])


def check_contract(result, prog, statuses=(0, 2), one_line=False):
    """Exit 0, or another of ``statuses`` with a ``PROG: error:`` last (``one_line``: only)
    line; no traceback."""
    lines = faultlib.error_lines(result.stderr)
    context = 'exit %d\n%s' % (result.returncode, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr, context
    assert result.returncode in statuses, context
    if result.returncode:
        assert lines and '%s: error:' % prog in lines[-1], context
        assert len(lines) == 1 or not one_line, context
    return {0: 'exit 0', 2: 'exit 2 with a message',
            EXIT_DIVERGED: 'exit %d: diverged, with a message' % EXIT_DIVERGED}[result.returncode]


# --- train_imagenet.py -----------------------------------------------------------------------

TRAIN_FLAGS = {
    '--model': st.sampled_from(NAMES), '--width-scale': FLOATS, '--dropout': FLOATS,
    '--asymmrate': INTS, '--shuffle-group': INTS, '--doshuffle': FLAG, '--last-gamma': FLAG,
    '--mode': st.sampled_from(['hybrid', 'imperative', 'symbolic']),
    '--batch-size': st.one_of(st.integers(-1, 64), INTS), '--num-epochs': INTS,
    '--optimizer': st.sampled_from(['nag', 'sgd', 'adam']), '--lr': FLOATS, '--lr-base': FLOATS,
    '--momentum': FLOATS, '--wd': FLOATS, '--no-wd': FLAG,
    '--lr-mode': st.sampled_from(['step', 'poly', 'cosine', 'linear']), '--lr-decay': FLOATS,
    '--lr-decay-period': INTS, '--lr-decay-epoch': st.sampled_from(['1', '0,1', 'a', '', '-1']),
    '--warmup-lr': FLOATS, '--warmup-epochs': INTS, '--label-smoothing': FLAG, '--mixup': FLAG,
    '--mixup-alpha': FLOATS, '--mixup-off-epoch': INTS, '--teacher': st.sampled_from(NAMES),
    '--temperature': FLOATS, '--hard-weight': FLOATS,
    '--seed': st.one_of(INTS, st.sampled_from(['4294967296', '-5'])),
    '--dtype': st.sampled_from(['float32', 'float16', 'bfloat16']), '--amp': FLAG,
    '--num-gpus': INTS, '--kvstore': st.sampled_from(['local', 'device', 'dist_sync', 'nccl']),
    '--input-size': st.one_of(st.integers(-1, 48), INTS), '--crop-ratio': FLOATS,
    '--classes': st.one_of(st.integers(-1, 12), INTS), '--num-training-samples': INTS,
    '--save-frequency': INTS, '--log-interval': INTS, '--logging-file': TEXT,
    '--tensorboard': FLAG, '--tag-name': TEXT, '--resume': st.sampled_from(['auto', 'none.json']),
    '--resume-epoch': INTS, '--resume-params': TEXT, '--resume-states': TEXT, '-j': INTS,
    '--dataset': st.sampled_from(['imagenet', 'digits', 'cifar']), '--data-dir': TEXT,
    '--rec-train-idx': TEXT, '--min-random-area': FLOATS, '--mirror': FLAG, '--no-mirror': FLAG,
    '--no-such-flag': TEXT,
}


def _train_base(jpeg_records):
    rec, idx = jpeg_records
    return faultlib.TRAIN + [
        '--rec-train', rec, '--rec-train-idx', idx, '--rec-val', rec, '--rec-val-idx', idx,
        '--model', faultlib.MODEL, '--input-size', '32', '--batch-size', '8', '--num-epochs', '1',
        '-j', '1', '--log-interval', '1']


def _train_tail(tmp_path):
    """Always last (argparse keeps the last value): outputs inside the test's folder."""
    return ['--save-dir', str(tmp_path / 'runs')]


@settings(faultlib.FUZZ, max_examples=25)
@given(flags=argv_strategy(TRAIN_FLAGS))
@example(flags=['--lr', 'nan'])
@example(flags=['--dtype', 'float16'])
@example(flags=['--num-gpus', '1'])
@example(flags=['--logging-file', '..'])
@example(flags=['--tag-name', ''])
@example(flags=['--amp'])
@example(flags=['--dataset', 'digits', '--input-size', '16'])
def test_train_random_flags(flags, jpeg_records, tmp_path_factory, cli, trials):
    tmp_path = tmp_path_factory.mktemp('train-fuzz')
    argv = _train_base(jpeg_records) + flags + _train_tail(tmp_path)
    result = cli.run(argv, tmp_path, DEADLINE)
    trials.record(FAULT % 'train_imagenet.py', check_contract(
        result, 'train_imagenet.py', (0, 2, EXIT_DIVERGED)), tool='train_imagenet.py')


# --- export, convert, eval --------------------------------------------------------------------

#: Paths a fuzzed flag may name, as placeholders (the folder is the example's own):
#: good weights, a missing file, the folder itself, a file under missing folders, a new file.
PATHS = ('GOOD_PARAMS', 'TMP/missing.params', 'TMP', 'TMP/no/such/dir/out', 'TMP/out', 'TMP/')
PATH = st.sampled_from(PATHS)
#: Where a command may write: never over the shared good weights.
OUT_PATH = st.sampled_from(PATHS[1:])


def _resolve(argv, tmp_path, good_params, **files):
    """The placeholders of ``argv`` replaced: GOOD_PARAMS, TMP and each of ``files``."""
    files.update(GOOD_PARAMS=good_params, TMP=str(tmp_path))
    pattern = re.compile('|'.join(sorted(files, key=len, reverse=True)))
    return [pattern.sub(lambda match: files[match.group(0)], token) for token in argv]


EXPORT_FLAGS = {
    '--model': st.sampled_from(NAMES), '--run-dir': PATH, '--params-file': PATH,
    '--classes': st.one_of(st.integers(-1, 12), INTS), '--width-scale': FLOATS,
    '--asymmrate': INTS, '--input-size': st.one_of(st.integers(-1, 48), INTS),
    '--crop-ratio': FLOATS, '--prefix': OUT_PATH,
    '--format': st.sampled_from(['mxnet', 'onnx', 'tf']), '--preprocess': FLAG, '--layout': st.sampled_from(['CHW', 'HWC', 'NCHW']),
    '--no-such-flag': TEXT,
}


@settings(faultlib.FUZZ, max_examples=25)
@given(flags=argv_strategy(EXPORT_FLAGS, 4))
@example(flags=['--input-size', '-1'])
@example(flags=['--input-size', '0'])
def test_export_random_flags(flags, good_params, tmp_path_factory, cli, trials):
    tmp_path = tmp_path_factory.mktemp('export-fuzz')
    base = faultlib.EXPORT + ['--model', faultlib.MODEL, '--classes', '10', '--input-size', '32',
                              '--params-file', 'GOOD_PARAMS', '--prefix', 'TMP/out']
    result = cli.run(_resolve(base + flags, tmp_path, good_params), tmp_path, DEADLINE)
    trials.record(FAULT % 'gluon_asymmnet.export',
                  check_contract(result, 'python -m gluon_asymmnet.export'), tool='export')


CONVERT_FLAGS = {'--model': st.sampled_from(NAMES + ['asymmnet_large_1.0']), '--root': OUT_PATH,
                 '--no-such-flag': TEXT}


@settings(faultlib.FUZZ, max_examples=20)
@given(src=st.sampled_from(PATHS + ('-', '')), flags=argv_strategy(CONVERT_FLAGS, 2))
def test_convert_random_flags(src, flags, good_params, tmp_path_factory, cli, trials):
    tmp_path = tmp_path_factory.mktemp('convert-fuzz')
    argv = faultlib.CONVERT + [src, '--model', faultlib.MODEL, '--root', 'TMP/store'] + flags
    result = cli.run(_resolve(argv, tmp_path, good_params), tmp_path, DEADLINE)
    trials.record(FAULT % 'gluon_asymmnet.convert',
                  check_contract(result, 'python -m gluon_asymmnet.convert'), tool='convert')


EVAL_FLAGS = {
    '--model': st.sampled_from(NAMES), '--params-file': PATH, '--model-prefix': PATH,
    '--onnx': PATH, '--classes': st.one_of(st.integers(-1, 12), INTS), '--width-scale': FLOATS,
    '--asymmrate': INTS, '--dataset': st.sampled_from(['imagenet', 'digits', 'cifar']),
    '--rec-val': PATH, '--rec-val-idx': PATH, '--data-dir': PATH,
    '--input-size': st.one_of(st.integers(-1, 48), INTS), '--crop-ratio': FLOATS,
    '--batch-size': st.one_of(st.integers(-1, 64), INTS), '-j': INTS, '--json': OUT_PATH,
    '--image': PATH, '--no-such-flag': TEXT,
}


@settings(faultlib.FUZZ, max_examples=25)
@given(flags=argv_strategy(EVAL_FLAGS, 4))
@example(flags=['--crop-ratio', '0'])
@example(flags=['--input-size', '-1'])
@example(flags=['--json', 'TMP'])
@example(flags=['--json', 'TMP/no/such/dir/out'])
def test_eval_random_flags(flags, good_params, jpeg_records, digits, tmp_path_factory, cli,
                           trials):
    tmp_path = tmp_path_factory.mktemp('eval-fuzz')
    base = faultlib.EVAL + ['--model', faultlib.MODEL, '--params-file', 'GOOD_PARAMS',
                            '--input-size', '32', '--rec-val', jpeg_records[0], '--rec-val-idx',
                            jpeg_records[1], '--batch-size', '8', '-j', '1']
    # the digits built once for the session, never the user's ~/.mxnet
    tail = ['--digits-root', os.path.dirname(os.path.dirname(digits.val_rec))]
    result = cli.run(_resolve(base + flags + tail, tmp_path, good_params), tmp_path, DEADLINE)
    trials.record(FAULT % 'eval.py', check_contract(result, 'eval.py'), tool='eval.py')


# --- quantize, plot, prepare ------------------------------------------------------------------

@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    """``{'GOOD_EXPORT': MXNet export prefix, 'GOOD_ONNX': ONNX file}`` of the suite's model."""
    from gluon_asymmnet.deploy.export import export_model
    prefix = str(tmp_path_factory.mktemp('fuzz-exports') / 'model')
    net = faultlib.random_net(0)
    export_model(net, prefix, 32)
    export_model(net, prefix, 32, fmt='onnx')
    return {'GOOD_EXPORT': prefix, 'GOOD_ONNX': prefix + '.onnx'}


QUANTIZE_FLAGS = {
    '--model-prefix': st.sampled_from(PATHS + ('GOOD_EXPORT',)),
    '--onnx': st.sampled_from(PATHS + ('GOOD_ONNX', 'GOOD_EXPORT-symbol.json')),
    '--dataset': st.sampled_from(['imagenet', 'digits', 'cifar']), '--rec-val': PATH,
    '--rec-val-idx': PATH, '--data-dir': PATH, '--input-size': SMALL_INTS,
    '--crop-ratio': FLOATS, '--batch-size': SMALL_INTS, '-j': INTS, '--out': OUT_PATH,
    '--num-calib': INTS, '--calib-mode': st.sampled_from(['naive', 'entropy', '']),
    '--no-such-flag': TEXT,
}


@settings(faultlib.FUZZ, max_examples=25)
@given(source=st.sampled_from([['--onnx', 'GOOD_ONNX'], ['--model-prefix', 'GOOD_EXPORT']]),
       flags=argv_strategy(QUANTIZE_FLAGS, 3))
@example(source=['--onnx', 'GOOD_ONNX'], flags=['--out', 'GOOD_ONNX'])
def test_quantize_random_flags(source, flags, exports, good_params, digits, tmp_path_factory,
                               cli, trials):
    tmp_path = tmp_path_factory.mktemp('quantize-fuzz')
    argv = faultlib.QUANTIZE + source + ['--dataset', 'digits', '--num-calib', '16',
                                         '--batch-size', '8', '-j', '1', '--out', 'TMP/int8']
    tail = ['--digits-root', os.path.dirname(os.path.dirname(digits.val_rec))]
    result = cli.run(_resolve(argv + flags + tail, tmp_path, good_params, **exports), tmp_path,
                     DEADLINE)
    trials.record(FAULT % 'gluon_asymmnet.quantize', check_contract(
        result, 'python -m gluon_asymmnet.quantize', one_line=True), tool='quantize')


#: Lines of a fuzzed metrics file: records with odd values, log lines, half lines, noise.
METRIC = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 3),
                   st.sampled_from(['x', None, [], {}]))
METRICS_LINE = st.one_of(
    st.fixed_dictionaries({'epoch': st.one_of(st.integers(-1, 4), st.sampled_from(['1', None]))},
                          optional={key: METRIC for key in ('train_loss', 'train_acc', 'val_loss',
                                                            'val_top1', 'val_top5', 'lr')}
                          ).map(json.dumps),
    st.sampled_from(['', '{"epoch": 1, "train_l', '[Epoch 0] training: loss=1.9 accuracy=0.3',
                     '[Epoch 1] validation: top1=0.5 top5=nan', '[Epoch x] speed: 1 samples/sec',
                     'null', '[1, 2]']),
    st.text(max_size=20))
PLOT_FLAGS = {'-o': OUT_PATH, '--output': st.sampled_from(['TMP/x.png', 'TMP/x', 'TMP/']),
              '--no-such-flag': TEXT}


@settings(faultlib.FUZZ, max_examples=25)
@given(lines=st.lists(METRICS_LINE, max_size=6),
       source=st.sampled_from(['TMP/metrics.jsonl', 'TMP', 'TMP/missing.jsonl', 'GOOD_PARAMS',
                               '']),
       flags=argv_strategy(PLOT_FLAGS, 2))
@example(lines=['{"epoch": 0, "val_top1": NaN}'], source='TMP/metrics.jsonl', flags=[])
def test_plot_random_metrics_and_flags(lines, source, flags, good_params, tmp_path_factory, cli,
                                       trials):
    tmp_path = tmp_path_factory.mktemp('plot-fuzz')
    (tmp_path / 'metrics.jsonl').write_text(''.join(line + '\n' for line in lines))
    argv = _resolve(faultlib.PLOT + [source] + flags, tmp_path, good_params)
    trials.record(FAULT % 'gluon_asymmnet.plot', check_contract(
        cli.run(argv, tmp_path, DEADLINE), 'python -m gluon_asymmnet.plot', one_line=True),
        tool='plot')


@pytest.fixture(scope='module')
def image_trees(tmp_path_factory, digits):
    """``{'IMAGES': 3 class folders of 2 digits, 'BAD_IMAGES': the same, one image noise}``."""
    import shutil
    root = tmp_path_factory.mktemp('fuzz-images')
    for tree in ('IMAGES', 'BAD_IMAGES'):
        for label in ('0', '1', '2'):
            folder = root / tree / label
            folder.mkdir(parents=True)
            for name in sorted(os.listdir(os.path.join(digits.val_dir, label)))[:2]:
                shutil.copy(os.path.join(digits.val_dir, label, name), str(folder / name))
    (root / 'BAD_IMAGES' / '1' / 'noise.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'noise' * 20)
    return {tree: str(root / tree) for tree in ('IMAGES', 'BAD_IMAGES')}


PREPARE_FLAGS = {'--resize': SMALL_INTS, '--quality': st.one_of(INTS, st.integers(90, 101)),
                 '--num-thread': st.one_of(st.integers(-1, 2), st.sampled_from(['0', 'x', ''])),
                 '--train-ratio': FLOATS, '-q': FLAG, '--no-such-flag': TEXT}


@settings(faultlib.FUZZ, max_examples=15)
@given(images=st.sampled_from(['IMAGES', 'BAD_IMAGES', 'IMAGES/0', 'TMP', 'TMP/missing',
                               'GOOD_PARAMS', '']),
       out=st.sampled_from(['TMP/out', 'TMP/', 'TMP/no/such/dir/out', 'TMP', '']),
       flags=argv_strategy(PREPARE_FLAGS, 3))
@example(images='IMAGES', out='TMP/out', flags=['--train-ratio', '0.5'])
def test_prepare_random_flags(images, out, flags, image_trees, good_params, tmp_path_factory,
                              cli, trials):
    tmp_path = tmp_path_factory.mktemp('prepare-fuzz')
    argv = _resolve(faultlib.PREPARE + [images, out] + flags, tmp_path, good_params,
                    **image_trees)
    trials.record(FAULT % 'gluon_asymmnet.data.prepare', check_contract(
        cli.run(argv, tmp_path, DEADLINE), 'python -m gluon_asymmnet.data.prepare',
        one_line=True), tool='prepare')


# --- the real interpreter ---------------------------------------------------------------------

@pytest.mark.parametrize('command', ['train', 'export'])
def test_fresh_interpreter_examples(command, jpeg_records, good_params, tmp_path, trials):
    """One fuzz-style bad value per command, run as a user runs it (no fork server)."""
    if command == 'train':
        argv = _train_base(jpeg_records) + ['--num-epochs', '0'] + _train_tail(tmp_path)
        prog = 'train_imagenet.py'
    else:
        argv = faultlib.EXPORT + ['--model', faultlib.MODEL, '--params-file', good_params,
                                  '--prefix', str(tmp_path / 'no' / 'dir' / 'out'),
                                  '--input-size', '-3']
        prog = 'python -m gluon_asymmnet.export'
    result = faultlib.run_cli(argv, cwd=str(tmp_path))
    trials.record(FAULT % (prog.split()[-1]), check_contract(result, prog),
                  tool='train_imagenet.py' if command == 'train' else 'export')
    assert result.returncode == 2, result.stderr[-3000:]
