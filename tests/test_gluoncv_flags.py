"""GluonCV's ``train_imagenet.py`` flags: accepted with GluonCV's meaning, or refused in one line.

``docs/gluoncv-flags.md`` lists every flag of GluonCV's script and what ours does
with it; each behaviour it claims for a flag that is not simply the same is tested
here.
"""
import json
import os
import re

import numpy as np
import pytest

from gluon_asymmnet.data import batches, prepare_digits
from gluon_asymmnet.model_zoo import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from gluon_asymmnet.train import main
from gluon_asymmnet.train.args import REFUSED_GLUONCV_FLAGS, build_parser, parse_args
from gluon_asymmnet.train.main import build_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = 'asymmnet_small_0.35'
MEAN, STD = '100,110,120', '40,50,60'


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('data')), size=32)


def argv(digits, save_dir, *extra):
    return ['--rec-train', digits.train_rec, '--rec-train-idx', digits.train_idx,
            '--rec-val', digits.val_rec, '--rec-val-idx', digits.val_idx,
            '--model', MODEL, '--input-size', '32', '--batch-size', '16', '--num-epochs', '1',
            '--num-training-samples', '32', '-j', '1', '--save-dir', str(save_dir),
            '--dropout', '0'] + list(extra)


def refusal(capsys, args):
    """``(exit status, the one line on stderr)`` of ``parse_args(args)``."""
    with pytest.raises(SystemExit) as ended:
        parse_args(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return ended.value.code, lines[0]


def test_use_rec_reads_the_record_files(digits, tmp_path):
    args = parse_args(argv(digits, tmp_path, '--use-rec'))
    job, lock, _ = build_job(args)
    try:
        assert job.recipe.data == os.path.abspath(digits.train_rec)
        assert job.train_data.num_batches == (1437 + 15) // 16     # the whole RecordIO file
    finally:
        lock.release()
        job.run_dir.close()


def test_use_rec_without_rec_train_is_refused(capsys, tmp_path):
    status, line = refusal(capsys, ['--model', MODEL, '--use-rec', '--data-dir', str(tmp_path)])
    assert status == 2
    assert '--use-rec' in line and 'give --rec-train' in line


def test_use_rec_with_the_digits_is_accepted():
    assert parse_args(['--model', MODEL, '--dataset', 'digits', '--use-rec']).use_rec


def test_mode_symbolic_is_hybrid(digits, tmp_path):
    args = parse_args(argv(digits, tmp_path, '--mode', 'symbolic'))
    assert args.mode == 'hybrid'
    job, lock, _ = build_job(args)
    try:
        assert job.net._active          # hybridized: one symbolic graph per input shape
    finally:
        lock.release()
        job.run_dir.close()


def test_data_backend_mxnet_is_accepted_dali_refused(capsys):
    assert parse_args(['--model', MODEL, '--data-backend', 'mxnet']).data_backend == 'mxnet'
    for backend in ('dali-gpu', 'dali-cpu'):
        status, line = refusal(capsys, ['--model', MODEL, '--data-backend', backend])
        assert status == 2
        assert '--data-backend %s' % backend in line and 'drop the flag' in line


@pytest.mark.parametrize('flag, dest, why', REFUSED_GLUONCV_FLAGS)
def test_flags_for_other_networks_are_refused(capsys, flag, dest, why):
    status, line = refusal(capsys, ['--model', MODEL, flag])
    assert status == 2
    assert line == 'train_imagenet.py: error: %s: %s (see --help)' % (flag, why)
    assert 'drop it' in line


@pytest.mark.parametrize('flag, value', [('--rgb-mean', '1,2'), ('--rgb-mean', 'a,b,c'),
                                         ('--rgb-mean', '0,0,300'), ('--rgb-std', '1,0,1')])
def test_bad_rgb_values_are_refused(capsys, flag, value):
    status, line = refusal(capsys, ['--model', MODEL, flag, value])
    assert status == 2 and flag in line and repr(value) in line


def test_rgb_mean_std_parse_gluoncv_format():
    args = parse_args(['--model', MODEL, '--rgb-mean', '123.68,116.779,103.939',
                       '--rgb-std', '58.393,57.12,57.375'])
    assert (args.rgb_mean, args.rgb_std) == (IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)


def _first_batch_pixels(digits, tmp_path, tag, *flags):
    """The first training batch of a job, back in 0-255 pixels through the job's mean/std."""
    job, lock, _ = build_job(parse_args(argv(digits, tmp_path, '--tag-name', tag, *flags)))
    try:
        data, _ = next(iter(batches(job.train_data)))
        mean = np.array(job.input_spec.mean).reshape(1, 3, 1, 1)
        std = np.array(job.input_spec.std).reshape(1, 3, 1, 1)
        return data.asnumpy(), data.asnumpy() * std + mean, job.input_spec
    finally:
        lock.release()
        job.run_dir.close()


def test_rgb_mean_std_normalise_the_training_data(digits, tmp_path):
    default, pixels, spec = _first_batch_pixels(digits, tmp_path, 'default')
    assert (spec.mean, spec.std) == (IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    given, given_pixels, spec = _first_batch_pixels(digits, tmp_path, 'given', '--rgb-mean', MEAN,
                                                    '--rgb-std', STD)
    assert (spec.mean, spec.std) == ((100., 110., 120.), (40., 50., 60.))
    assert not np.allclose(default, given, atol=1e-2)
    np.testing.assert_allclose(pixels, given_pixels, atol=1e-2)   # the same images


def test_rgb_mean_std_are_recorded_for_eval_and_export(digits, tmp_path, capsys):
    assert main(argv(digits, tmp_path, '--rgb-mean', MEAN, '--rgb-std', STD)) == 0
    folder = os.path.join(str(tmp_path), MODEL + '-baseline')
    with open(os.path.join(folder, 'run.json')) as stream:
        recorded = json.load(stream)['input']
    assert (recorded['mean'], recorded['std']) == ([100, 110, 120], [40, 50, 60])
    with open(os.path.join(folder, MODEL + '-info.json')) as stream:
        exported = json.load(stream)
    assert (exported['mean'], exported['std']) == ([100, 110, 120], [40, 50, 60])
    # a resume may not change the input it learnt on
    status = main(argv(digits, tmp_path, '--num-epochs', '2', '--resume', 'auto',
                       '--rgb-mean', '1,2,3', '--rgb-std', STD))
    assert status == 2
    assert '--rgb-mean (100.0, 110.0, 120.0) -> (1.0, 2.0, 3.0)' in capsys.readouterr().err


def test_every_gluoncv_flag_is_in_the_parser_and_the_page():
    """docs/gluoncv-flags.md has a row for each flag of GluonCV's script; ours parses each."""
    with open(os.path.join(ROOT, 'docs', 'gluoncv-flags.md')) as stream:
        rows = [line.split('|')[1] for line in stream if line.startswith('| `')]
    documented = {flag for row in rows for flag in re.findall(r'`(-[^`]+)`', row)}
    assert documented == set(GLUONCV_FLAGS) | {'-j'}
    ours = {option for action in build_parser()._actions for option in action.option_strings}
    assert set(GLUONCV_FLAGS) <= ours, set(GLUONCV_FLAGS) - ours


#: Every flag of GluonCV 0.10's scripts/classification/imagenet/train_imagenet.py.
GLUONCV_FLAGS = (
    '--data-backend', '--data-dir', '--rec-train', '--rec-train-idx', '--rec-val',
    '--rec-val-idx', '--use-rec', '--batch-size', '--dtype', '--num-gpus', '--num-data-workers',
    '--num-epochs', '--lr', '--momentum', '--wd', '--lr-mode', '--lr-decay', '--lr-decay-period',
    '--lr-decay-epoch', '--warmup-lr', '--warmup-epochs', '--last-gamma', '--mode', '--model',
    '--input-size', '--crop-ratio', '--use-pretrained', '--use_se', '--mixup', '--mixup-alpha',
    '--mixup-off-epoch', '--label-smoothing', '--no-wd', '--teacher', '--temperature',
    '--hard-weight', '--batch-norm', '--save-frequency', '--save-dir', '--resume-epoch',
    '--resume-params', '--resume-states', '--log-interval', '--logging-file', '--use-gn',
    '--rgb-mean', '--rgb-std', '--num-training-samples',
)
