"""Property-based fuzzing of the command lines: random flags and values never give a traceback.

For ``train_imagenet.py``, ``python -m gluon_asymmnet.export`` and
``python -m gluon_asymmnet.convert`` and ``eval.py``, hypothesis draws a few
flags (real ones with valid, borderline and nonsense values, and unknown ones)
on top of a base command that is cheap when it is valid (a 40-image RecordIO
file, one epoch). The contract: exit status 0, or 2 with a last stderr line
``PROG: error: ...``; never a Python traceback, never another status, never a
hang. The examples run in :class:`faultlib.CliServer` (forked from one
interpreter that has MXNet imported: ``runpy`` as ``python SCRIPT``/``python -m``
would); one fixed example per command also runs in a fresh interpreter.
"""
import os

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


def check_contract(result, prog, statuses=(0, 2)):
    """Exit 0, or another of ``statuses`` with a ``PROG: error:`` last line; no traceback."""
    lines = faultlib.error_lines(result.stderr)
    context = 'exit %d\n%s' % (result.returncode, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr, context
    assert result.returncode in statuses, context
    if result.returncode:
        assert lines and '%s: error:' % prog in lines[-1], context
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
    result = cli.run(argv, tmp_path)
    trials.record(FAULT % 'train_imagenet.py', check_contract(
        result, 'train_imagenet.py', (0, 2, EXIT_DIVERGED)))


# --- export, convert, eval --------------------------------------------------------------------

#: Paths a fuzzed flag may name, as placeholders (the folder is the example's own):
#: good weights, a missing file, the folder itself, a file under missing folders, a new file.
PATHS = ('GOOD_PARAMS', 'TMP/missing.params', 'TMP', 'TMP/no/such/dir/out', 'TMP/out', 'TMP/')
PATH = st.sampled_from(PATHS)
#: Where a command may write: never over the shared good weights.
OUT_PATH = st.sampled_from(PATHS[1:])


def _resolve(argv, tmp_path, good_params):
    return [token.replace('GOOD_PARAMS', good_params).replace('TMP', str(tmp_path))
            for token in argv]


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
    result = cli.run(_resolve(base + flags, tmp_path, good_params), tmp_path)
    trials.record(FAULT % 'gluon_asymmnet.export',
                  check_contract(result, 'python -m gluon_asymmnet.export'))


CONVERT_FLAGS = {'--model': st.sampled_from(NAMES + ['asymmnet_large_1.0']), '--root': OUT_PATH,
                 '--no-such-flag': TEXT}


@settings(faultlib.FUZZ, max_examples=20)
@given(src=st.sampled_from(PATHS + ('-', '')), flags=argv_strategy(CONVERT_FLAGS, 2))
def test_convert_random_flags(src, flags, good_params, tmp_path_factory, cli, trials):
    tmp_path = tmp_path_factory.mktemp('convert-fuzz')
    argv = faultlib.CONVERT + [src, '--model', faultlib.MODEL, '--root', 'TMP/store'] + flags
    result = cli.run(_resolve(argv, tmp_path, good_params), tmp_path)
    trials.record(FAULT % 'gluon_asymmnet.convert',
                  check_contract(result, 'python -m gluon_asymmnet.convert'))


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
    result = cli.run(_resolve(base + flags + tail, tmp_path, good_params), tmp_path)
    trials.record(FAULT % 'eval.py', check_contract(result, 'eval.py'))


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
    trials.record(FAULT % (prog.split()[-1]), check_contract(result, prog))
    assert result.returncode == 2, result.stderr[-3000:]
