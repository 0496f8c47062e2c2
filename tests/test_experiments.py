"""The experiment runner: grid checks, kill-and-rerun safety, the report's statistics, paired
twins, and committed reports that belong to their code."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from scipy import stats

from gluon_asymmnet.data import batches, prepare_digits
from gluon_asymmnet.experiments import grid, main
from gluon_asymmnet.experiments import cli as cli_mod, provenance
from gluon_asymmnet.experiments.measure import QUIET_LOAD, _stale, interleaved_latency, loaded
from gluon_asymmnet.experiments.presets import PRESETS
from gluon_asymmnet.fileio import exclusive_lock
from gluon_asymmnet.experiments.report import (Row, markdown, mean_std, paired, paired_interval,
                                               replace_block, resolvable, seeds_needed,
                                               sign_test, verdict)
from gluon_asymmnet.experiments.runner import _run_locked, cell_state
from gluon_asymmnet.experiments.tasks import TASKS
from gluon_asymmnet.params import seeded_initialize, structured_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A tiny recipe: 2 epochs of 64 digits at 32x32.
TINY = ['--dataset', 'digits', '--input-size', '32', '--crop-ratio', '1', '--batch-size', '32',
        '--num-training-samples', '64', '--num-epochs', '2', '--lr', '0.1',
        '--save-frequency', '0', '--log-interval', '100']


# ---------------------------------------------------------------- bad grids


def status(argv):
    """The exit status of the runner's ``main``."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize('own, flags, message', [
    (['--models', 'asymmnet_tiny_0.5'], [], "unknown model 'asymmnet_tiny_0.5'"),
    (['--models', 'asymmnet_small', '--widths', '0.6'], [], 'asymmnet_small has no width 0.6'),
    (['--models', 'mobilenetv3_large', '--asymmrate', '0', '1'], [],
     'mobilenetv3_large has no asymmetrical bottleneck'),
    (['--models', 'mobilenetv2_asymm_0.5', '--shuffle-group', '2'], [],
     'mobilenetv2_asymm_0.5 has no channel shuffle'),
    (['--models', 'asymmnet_small_0.5', '--seeds', '0'], [], '--seeds must be >= 1'),
    (['--models', 'asymmnet_small_0.5', '--jobs', '0'], TINY, '--jobs must be between 1 and'),
    (['--models', 'asymmnet_small_0.5'], TINY + ['--seed', '3'], 'the runner sets --seed'),
    (['--models', 'asymmnet_small_0.5'], TINY + ['--tag', 'x'], 'the runner sets --tag-name'),
    (['--preset', 'digits', '--models', 'asymmnet_small_0.5'], [], '--preset or --models'),
])
def test_a_bad_grid_is_one_line_and_status_2(tmp_path, capsys, own, flags, message):
    out = tmp_path / 'out'
    assert status(own + ['--out', str(out), '--'] + flags) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and message in err, err
    assert not (out / 'runs').exists()


def test_an_unwritable_output_folder_is_one_line_and_status_2(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    assert status(['--models', 'asymmnet_small_0.5', '--out', str(blocker / 'out'), '--']
                  + TINY) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'cannot be written' in err


def test_a_bad_training_flag_stops_before_anything_trains(tmp_path):
    # train_imagenet.py's own check
    assert status(['--models', 'asymmnet_small_0.5', '--out', str(tmp_path), '--'] + TINY
                  + ['--lr', '-1']) == 2
    assert not (tmp_path / 'runs').exists()


def test_another_recipe_in_the_same_output_folder_is_refused(tmp_path, capsys):
    (tmp_path / 'experiment.json').write_text('{"recipe": ["--num-epochs", "9"]}')
    assert status(['--models', 'asymmnet_small_0.5', '--out', str(tmp_path), '--'] + TINY) == 2
    assert 'another recipe' in capsys.readouterr().err


def test_a_second_runner_on_the_same_output_folder_is_refused(tmp_path, capsys):
    held = exclusive_lock(str(tmp_path / '.runner.lock'))   # what a running runner holds
    assert held is not None and exclusive_lock(str(tmp_path / '.runner.lock')) is None
    try:
        assert status(['--models', 'asymmnet_small_0.35', '--out', str(tmp_path), '--']
                      + TINY) == 2
    finally:
        held.close()
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'in use by another experiment runner' in err, err
    assert not (tmp_path / 'runs').exists()
    exclusive_lock(str(tmp_path / '.runner.lock')).close()   # free once its holder let go


# ---------------------------------------------------------------- grids and presets


def test_grid_cells_tags_and_model_defaults():
    cells, notes = grid.expand([grid.Arm(('asymmnet_small', 'mobilenetv3_small'), ('0.5',),
                                         None, None),
                                grid.Arm(('asymmnet_small_0.5',), None, (0, 2), (0, 2)),
                                grid.Arm(('mobilenetv3_large',))], seeds=2)
    names = [c.run_name for c in cells]
    assert names[:4] == ['asymmnet_small_0.5-r1-g0-seed0', 'asymmnet_small_0.5-r1-g0-seed1',
                         'mobilenetv3_small_0.5-r0-g0-seed0', 'mobilenetv3_small_0.5-r0-g0-seed1']
    # shuffling at r=0 is the same network as r=0: one variant
    assert names[4:10] == ['asymmnet_small_0.5-r0-g0-seed0', 'asymmnet_small_0.5-r0-g0-seed1',
                           'asymmnet_small_0.5-r2-g0-seed0', 'asymmnet_small_0.5-r2-g0-seed1',
                           'asymmnet_small_0.5-r2-g2-seed0', 'asymmnet_small_0.5-r2-g2-seed1']
    assert names[10:] == ['mobilenetv3_large-seed0', 'mobilenetv3_large-seed1']
    assert cells[-1].train_flags() == ['--model', 'mobilenetv3_large', '--seed', '1']
    assert cells[8].train_flags()[-4:] == ['--asymmrate', '2', '--shuffle-group', '2']
    assert notes == []


def test_every_preset_expands_and_optional_families_are_left_out_with_a_note():
    for preset in PRESETS.values():
        cells, notes = grid.expand(preset.arms, preset.seeds)
        assert len(cells) == len(set(cells)) > 0
        optional = any(arm.optional for arm in preset.arms)
        if optional and 'ghostnet_1.0' not in grid.model_zoo.list_models():
            assert notes and all('ghostnet' in note for note in notes), notes
        elif not optional:
            assert notes == []
    cells = grid.expand(PRESETS['matched-madds'].arms, 1)[0]
    assert {c.model for c in cells} >= {'asymmnet_large_0.35', 'mobilenetv3_small_1.0'}


def test_dry_run_lists_the_cells_and_trains_nothing(tmp_path, capsys):
    assert main(['--models', 'asymmnet_small_0.35', '--asymmrate', '0', '1', '--seeds', '2',
                 '--out', str(tmp_path), '--dry-run', '--'] + TINY) == 0
    out = capsys.readouterr().out
    listed = [line.split()[:3] for line in out.splitlines() if line.startswith('asymmnet')]
    assert listed == [['asymmnet_small_0.35-r%d-g0-seed%d' % (r, s), 'to', 'train']
                      for r in (0, 1) for s in (0, 1)]
    assert '4 cells (2 variants x seeds): 0 done, 0 partial, 4 to train' in out
    assert 'estimated time' in out
    assert not (tmp_path / 'runs').exists() or not os.listdir(tmp_path / 'runs')


# ---------------------------------------------------------------- report math


def test_mean_and_sample_std():
    mean, std = mean_std([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82) and std == pytest.approx(0.02)
    assert math.isnan(mean_std([0.5])[1])


def test_paired_interval_and_sign_test_on_known_numbers():
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3)
    mean, low, high = paired_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert half == pytest.approx(2.4841, abs=1e-4)
    assert (mean, low, high) == pytest.approx((2, 2 - half, 2 + half))
    assert paired_interval([0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        paired_interval([0.5])
    # 3 of 3 above 0: p = 2 * 0.5^3; a tie counts on neither side
    assert sign_test([1.0, 2.0, 3.0]) == (3, 0, pytest.approx(0.25))
    assert sign_test([1.0, 0.0, -2.0]) == (1, 1, pytest.approx(1.0))
    assert sign_test([0.0]) == (0, 0, 1.0)


def test_seeds_needed_give_an_interval_at_most_the_resolution_wide():
    # sd 1 pp, resolution 1 pp: the fewest n with 2 t(0.975, n-1) / sqrt(n) <= 1
    width = [2 * stats.t.ppf(0.975, n - 1) / math.sqrt(n) for n in range(2, 40)]
    expected = 2 + next(i for i, w in enumerate(width) if w <= 1)
    assert expected == 18
    assert seeds_needed(1.0, 1.0) == expected
    assert resolvable(1.0, expected) <= 1 < resolvable(1.0, expected - 1)
    assert seeds_needed(0.2, 1.0) == 3 and seeds_needed(0.0, 1.0) == 2
    assert seeds_needed(100.0, 0.01) is None and resolvable(1.0, 1) == math.inf


@pytest.mark.parametrize('low, high, expected', [
    (0.1, 0.9, 'higher'), (-2.5, -0.2, 'lower'), (-0.4, 0.7, 'within ±1 (resolved)'),
    (-1.0, 1.0, 'within ±1 (resolved)'), (-0.5, 1.5, 'not resolved'), (-3, 3, 'not resolved')])
def test_verdicts(low, high, expected):
    assert verdict(low, high, 1.0) == expected


def _row(family, width, rate, top1, seeds=None, **measured):
    return Row('%s_%s' % (family, width), family, width, rate, 0, 1e6, 1e5,
               measured.get('mxnet_ms', 1.0), 0.5, top1, [1.0] * len(top1), seeds=seeds,
               mxnet_load=measured.get('mxnet_load', 0.0), onnxruntime_load=0.0)


def test_twins_are_paired_seed_by_seed():
    # the seeds move both networks alike: unpaired, 1 point is lost in a 10-point spread
    base = [0.80, 0.90, 0.70, 0.85]
    rows = [_row('asymmnet_small', '0.5', 1, [b + 0.01 + e for b, e in
                                              zip(base, [0.001, -0.001, 0.002, 0.0])]),
            _row('asymmnet_small', '0.5', 0, base),
            _row('asymmnet_large', '0.5', 1, [0.91, 0.90, 0.92], seeds=[1, 2, 3]),
            _row('mobilenetv3_large', '0.5', 0, [0.70, 0.905, 0.90, 0.925], seeds=[0, 1, 2, 3]),
            _row('asymmnet_small', '0.35', 1, [0.9])]
    found = paired(rows, resolution=1.0)
    assert [(p.row.model, p.twin.model) for p in found] == [
        ('asymmnet_small_0.5', 'asymmnet_small_0.5'),
        ('asymmnet_large_0.5', 'mobilenetv3_large_0.5')]
    small, large = found
    assert small.diffs == pytest.approx([1.1, 0.9, 1.2, 1.0])
    assert small.verdict == 'higher' and 0.5 < small.low < small.high < 1.5
    assert (small.above, small.below) == (4, 0)
    assert small.needed == seeds_needed(float(np.std(small.diffs, ddof=1)), 1.0)
    # only the seeds both have: 1, 2, 3
    assert large.seeds == [1, 2, 3] and large.diffs == pytest.approx([0.5, 0.0, -0.5])
    assert large.verdict == 'not resolved'
    text = markdown(rows, ['context'])
    assert '| asymmnet_small_0.5 r=1 | asymmnet_small_0.5 r=0 | +1.1 +0.9 +1.2 +1.0 | +1.05 |' \
        in text
    assert '4/0, p=0.12 |' in text and '| higher |' in text and 'noise' not in text
    assert 'resolves differences of ±' in text
    assert '| asymmnet_small_0.5 | 0.5 | 1 | 0 | 1.00 | 0.100 | 1.00 | 0.50 |' in text
    assert '\n|' + '---|' * 11 + '\n' in text


def test_latencies_timed_under_load_are_marked_with_the_load():
    quiet = markdown([_row('asymmnet_small', '0.5', 0, [0.9], mxnet_load=0.1)], ['context'])
    assert '| 1.00 | 0.50 |' in quiet and '†' not in quiet
    busy = markdown([_row('asymmnet_small', '0.5', 0, [0.9], mxnet_load=1.4)], ['context'])
    assert '| 1.00† | 0.50 |' in busy and 'kept up to 1.40 cores busy' in busy
    assert loaded(None) and loaded(QUIET_LOAD + 0.01) and not loaded(QUIET_LOAD)
    # a cached latency timed under load is timed again, a quiet one is kept
    assert _stale({'macs': 1, 'mxnet_ms': 1.0, 'mxnet_load': 1.4}, 'mxnet', 200)
    assert not _stale({'macs': 1, 'mxnet_ms': 1.0, 'mxnet_load': 0.1}, 'mxnet', 200)
    assert not _stale({'macs': 1, 'mxnet_ms': 1.0, 'mxnet_load': 1.4}, 'mxnet', 0)
    assert _stale({'mxnet_ms': 1.0, 'mxnet_load': 0.1}, 'mxnet', 0)   # no MACs yet


def test_report_rows_carry_the_seeds_and_the_load_of_their_latencies():
    variant = ('asymmnet_small_0.5', 'asymmnet_small', '0.5', 1, 0)
    done = [(3, {'val_top1': 0.9, 'val_top5': 1.0}), (5, {'val_top1': 0.8, 'val_top5': 0.9})]
    measured = {'macs': 5, 'mxnet_ms': 1.0, 'mxnet_load': 1.4, 'onnxruntime_ms': 0.5,
                'onnxruntime_load': 0.1}
    row, = cli_mod._rows({variant: done, ('x', 'x', None, None, None): []},
                         TASKS['classification'], {variant: measured})
    assert (row.seeds, row.top1, row.top5) == ([3, 5], [0.9, 0.8], [1.0, 0.9])
    assert (row.macs, row.mxnet_load, row.onnxruntime_load) == (5, 1.4, 0.1)


def test_cpu_load_counts_other_processes_only(monkeypatch):
    clock = {'wall': 100.0, 'busy': 50.0, 'own': 5.0}
    monkeypatch.setattr(provenance.time, 'time', lambda: clock['wall'])
    monkeypatch.setattr(provenance, '_busy_seconds', lambda: clock['busy'])
    monkeypatch.setattr(provenance, '_own_seconds', lambda: clock['own'])
    load = provenance.CpuLoad().start()
    # 10 s: the machine spent 16 CPU seconds, 4 of them this process and its children
    clock.update(wall=110.0, busy=66.0, own=9.0)
    assert load.others() == pytest.approx(1.2)
    monkeypatch.setattr(provenance, '_busy_seconds', lambda: None)   # no /proc/stat
    assert provenance.CpuLoad().start().others() is None


def test_latency_rounds_time_every_model_once_each():
    calls = []
    runners = [lambda x, name=name: calls.append(name) for name in 'ab']
    (a_low, a_median), (b_low, b_median) = interleaved_latency(runners, None, runs=5, warmup=2)
    assert calls == list('aabb') + list('ab') * 5
    assert 0 < a_low <= a_median and 0 < b_low <= b_median


def test_replace_block(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('a\n<!-- x:begin -->\nold\n<!-- x:end -->\nb\n')
    replace_block(str(readme), 'x', 'new\n')
    assert readme.read_text() == 'a\n<!-- x:begin -->\nnew\n<!-- x:end -->\nb\n'


# ---------------------------------------------------------------- killing and rerunning


def _runner(out):
    command = [sys.executable, '-m', 'gluon_asymmnet.experiments', '--models',
               'asymmnet_small_0.35', '--asymmrate', '0', '1', '2', '--out', str(out),
               '--latency-runs', '0', '--'] + TINY
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait(condition, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_killed_runner_loses_only_the_cells_in_flight(tmp_path):
    cells = grid.expand([grid.Arm(('asymmnet_small_0.35',), None, (0, 1, 2))], 1)[0]
    runs = str(tmp_path / 'runs')
    folder = [os.path.join(runs, c.run_name) for c in cells]

    def done(i):
        return cell_state(runs, cells[i], 2).state == 'done'

    # SIGKILL while the second cell trains: its child stops with the runner
    runner = _runner(tmp_path)
    assert _wait(lambda: done(0) and _run_locked(folder[1])), runner.communicate()[0]
    finished_first = os.path.getmtime(os.path.join(folder[0], 'metrics.jsonl'))
    runner.kill()
    runner.communicate()
    assert _wait(lambda: not _run_locked(folder[1]), timeout=30)   # the child is gone
    assert not done(1)

    # SIGINT while the second cell trains again: the runner ends, so does its child
    runner = _runner(tmp_path)
    assert _wait(lambda: _run_locked(folder[1]))
    runner.send_signal(signal.SIGINT)
    out = runner.communicate(timeout=30)[0]
    assert runner.returncode == 130, out
    assert 'SIGINT: stopping 1 cell(s) in flight' in out
    assert not _run_locked(folder[1]) and not done(1) and not done(2)

    # the rerun trains the two cells left, not the finished one
    runner = _runner(tmp_path)
    out = runner.communicate(timeout=300)[0]
    assert runner.returncode == 0, out
    assert cells[0].run_name not in out.split('report:')[0]
    assert os.path.getmtime(os.path.join(folder[0], 'metrics.jsonl')) == finished_first
    assert all(done(i) for i in range(3))
    report = (tmp_path / 'report.md').read_text()
    assert report.count('| asymmnet_small_0.35 |') == 3
    assert (tmp_path / 'top1_vs_madds.png').exists() and (tmp_path / 'report.csv').exists()

    # everything finished: a rerun trains nothing
    runner = _runner(tmp_path)
    out = runner.communicate(timeout=120)[0]
    assert runner.returncode == 0 and 'starting' not in out and 'resuming' not in out, out
    assert np.isfinite([cell_state(runs, c, 2).final['val_top1'] for c in cells]).all()


# ---------------------------------------------------------------- paired cells


def _twin_job(tmp_path, digits, tag, *flags):
    from gluon_asymmnet.train.args import parse_args
    from gluon_asymmnet.train.main import build_job
    args = parse_args(['--rec-train', digits.train_rec, '--rec-train-idx', digits.train_idx,
                       '--model', 'asymmnet_small_0.35', '--input-size', '32',
                       '--batch-size', '8', '--num-epochs', '1', '-j', '1',
                       '--save-dir', str(tmp_path), '--tag-name', tag] + list(flags))
    job, lock, _ = build_job(args)
    lock.release()
    params = {name: p.data().asnumpy() for name, p in structured_params(job.net).items()}
    data, label = next(iter(batches(job.train_data)))
    return params, data.asnumpy(), label.asnumpy()


def test_twins_with_one_seed_share_initialisation_and_data(tmp_path):
    digits = prepare_digits(str(tmp_path / 'data'), size=32)
    r1, data1, label1 = _twin_job(tmp_path, digits, 'a', '--asymmrate', '1', '--seed', '3')
    r0, data0, label0 = _twin_job(tmp_path, digits, 'b', '--asymmrate', '0', '--seed', '3')
    other, data_other, _ = _twin_job(tmp_path, digits, 'c', '--asymmrate', '0', '--seed', '4')
    shared = [n for n in r0 if n in r1 and r0[n].shape == r1[n].shape]
    weights = [n for n in shared if n.endswith('weight')]
    assert len(weights) > 5 and len(shared) < len(r0)   # the asymmetrical blocks differ
    for name in shared:
        np.testing.assert_array_equal(r0[name], r1[name], err_msg=name)
    # the seed varies the initialisation (random draws, not the constant BatchNorm ones)
    assert all(not np.array_equal(r0[n], other[n]) for n in weights)
    assert r0[weights[0]].std() > 0
    np.testing.assert_array_equal(data0, data1)
    np.testing.assert_array_equal(label0, label1)
    assert not np.array_equal(data0, data_other)


def test_seeded_initialize_needs_known_shapes():
    net = mx.gluon.nn.Dense(3)   # in_units inferred at the first call
    with pytest.raises(ValueError, match='has no shape yet'):
        seeded_initialize(net, mx.init.MSRAPrelu(), 0)


# ---------------------------------------------------------------- reports belong to their code

#: The small grid whose report is committed in tests/fixtures/experiments/tiny: 2 variants x 2
#: seeds, one thread per cell, 3 epochs of 320 digits (about 40% top-1); regenerate it with
#: ``python -m gluon_asymmnet.experiments <TINY_GRID> --out OUT --report-dir FIXTURE -- <SHORT>``.
TINY_GRID = ['--models', 'asymmnet_small_0.35', '--asymmrate', '0', '1', '--seeds', '2',
             '--jobs', '1', '--cell-threads', '1', '--latency-runs', '0']
SHORT = ['--dataset', 'digits', '--input-size', '32', '--crop-ratio', '1', '--batch-size', '32',
         '--num-training-samples', '320', '--num-epochs', '3', '--lr-base', '0.325',
         '--lr-mode', 'cosine', '--warmup-epochs', '1', '--save-frequency', '0',
         '--log-interval', '100']
TINY_REPORT = 'tests/fixtures/experiments/tiny'
COMMITTED_REPORTS = ['docs/experiments/report.json', TINY_REPORT + '/report.json',
                     'docs/experiments-detection/report.json']


def _results(report):
    """What a rerun must reproduce exactly: per-seed accuracies and the paired verdicts."""
    rows = {(r['model'], r['asymmrate'], r['shuffle_group']): (r['seeds'], r['top1'], r['top5'])
            for r in report['rows']}
    return rows, [(p['row'], p['twin'], p['diffs'], p['verdict']) for p in report['paired']]


def _read_json(path):
    with open(path) as report:
        return json.load(report)


@pytest.mark.parametrize('report', COMMITTED_REPORTS)
def test_committed_reports_belong_to_the_training_code(report):
    made = _read_json(os.path.join(ROOT, report))
    task = TASKS[made.get('task', 'classification')]
    committed = provenance.committed_fingerprint(ROOT, code=task.code)
    if committed is None:
        pytest.skip('not a git checkout: which training code is committed is unknown')
    assert made['code_committed'], '%s was made from uncommitted training code' % report
    assert made['code'] == committed, (
        '%s was made by the training code of commit %s, which changed since (last change: %s): '
        'its numbers are not this code\'s; regenerate it (%s)'
        % (report, (made['commit'] or '?')[:10], provenance.last_code_change(ROOT, task.code),
           'make experiments-detection' if task.name == 'detection' else
           'make experiments' if report.startswith('docs') else
           'python -m gluon_asymmnet.experiments %s --out OUT --report-dir %s -- %s'
           % (' '.join(TINY_GRID), TINY_REPORT, ' '.join(SHORT))))


@pytest.mark.slow
def test_a_rerun_reproduces_the_committed_report(tmp_path):
    committed = _read_json(os.path.join(ROOT, TINY_REPORT, 'report.json'))
    made_on = committed['machine'].rsplit(', ', 1)[0]
    if made_on != provenance.cpu():
        pytest.skip('the committed report was made on %s, this is %s: the kernels (and their '
                    'rounding) depend on the CPU' % (made_on, provenance.cpu()))
    if committed['code'] != provenance.code_fingerprint(ROOT):
        pytest.skip('the training code changed since the committed report: '
                    'test_committed_reports_belong_to_the_training_code says how to regenerate')
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.experiments'] + TINY_GRID
                          + ['--out', str(tmp_path), '--'] + SHORT, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:]
    rerun = _read_json(str(tmp_path / 'report.json'))
    assert rerun['recipe'] == committed['recipe'] and rerun['cell_threads'] == 1
    assert _results(rerun) == _results(committed)


def test_an_output_folder_of_other_training_code_is_refused(tmp_path, capsys):
    (tmp_path / 'experiment.json').write_text(json.dumps({'recipe': TINY, 'code': 'older'}))
    assert status(['--models', 'asymmnet_small_0.5', '--out', str(tmp_path), '--'] + TINY) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'trained by other training code' in err


def test_code_fingerprint_is_git_s_view_of_the_training_code(tmp_path):
    root = tmp_path / 'repo'
    (root / 'gluon_asymmnet' / 'models').mkdir(parents=True)
    (root / 'gluon_asymmnet' / 'models' / 'a.py').write_text('A = 1\n')
    (root / 'gluon_asymmnet' / 'models' / 'notes.txt').write_text('not code\n')
    (root / 'gluon_asymmnet' / 'params.py').write_text('P = 1\n')
    (root / 'gluon_asymmnet' / 'zoo.py').write_text('Z = 1\n')   # not training code
    before = provenance.code_fingerprint(str(root))
    git = ['git', '-C', str(root), '-c', 'user.name=t', '-c', 'user.email=t@t']
    if subprocess.run(git + ['init', '-q'], capture_output=True).returncode != 0:
        pytest.skip('git is not available')
    subprocess.run(git + ['add', '.'], check=True)
    subprocess.run(git + ['commit', '-qm', 'x'], check=True)
    assert provenance.committed_fingerprint(str(root)) == before
    (root / 'gluon_asymmnet' / 'zoo.py').write_text('Z = 2\n')
    (root / 'gluon_asymmnet' / 'models' / 'notes.txt').write_text('changed\n')
    assert provenance.code_fingerprint(str(root)) == before
    (root / 'gluon_asymmnet' / 'models' / 'a.py').write_text('A = 2\n')
    assert provenance.code_fingerprint(str(root)) != before
    assert provenance.committed_fingerprint(str(root)) == before
    assert provenance.provenance(str(root))['code_committed'] is False


# ---------------------------------------------------------------- detection cells

#: A tiny detection recipe: one epoch of 16 canvases, 8 validation canvases.
TINY_DETECTION = ['--num-epochs', '1', '--num-train', '16', '--num-val', '8',
                  '--batch-size', '8']


@pytest.mark.parametrize('own, flags, message', [
    (['--models', 'mobilenetv2_asymm_0.5'], [], 'mobilenetv2_asymm_0.5 has no detection config'),
    (['--models', 'asymmnet_small_0.5', '--asymmrate', '0'], [],
     "a detector's backbone is built by its zoo name"),
    (['--models', 'asymmnet_small_0.5', '--shuffle-group', '2'], [],
     "a detector's backbone is built by its zoo name"),
    (['--models', 'asymmnet_small_0.5'], ['--num-epochs', '0'],
     '--num-epochs must be between 1 and'),
    (['--models', 'asymmnet_small_0.5'], ['--seed', '3'], 'the runner sets --seed'),
    (['--models', 'asymmnet_small_0.5'], ['--lr', '0.1'], 'unrecognized arguments: --lr'),
])
def test_a_bad_detection_grid_is_one_line_and_status_2(tmp_path, capsys, own, flags, message):
    out = tmp_path / 'out'
    assert status(own + ['--task', 'detection', '--out', str(out), '--'] + flags) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and message in err, err
    assert not (out / 'runs').exists()


@pytest.mark.parametrize('own, message', [
    (['--seeds', '0'], '--seeds must be >= 1'),
    (['--task', 'classification'], 'a preset has its own'),
])
def test_a_bad_detection_preset_run_is_one_line_and_status_2(tmp_path, capsys, own, message):
    assert status(['--preset', 'detection', '--out', str(tmp_path)] + own) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and message in err, err
    assert not (tmp_path / 'runs').exists()


def test_the_detection_preset_pairs_asymmnet_with_its_r0_twin():
    preset = PRESETS['detection']
    assert preset.task == 'detection' and preset.seeds >= 4 and preset.cell_threads == 1
    cells, notes = grid.expand(preset.arms, preset.seeds)
    TASKS['detection'].check(cells)
    assert notes == [] and len(cells) == 2 * preset.seeds
    assert {(c.model, c.asymmrate) for c in cells} == {('asymmnet_small_0.5', 1),
                                                       ('mobilenetv3_small_0.5', 0)}
    rows = [_row(family, '0.5', rate, [0.2] * preset.seeds)
            for family, rate in (('asymmnet_small', 1), ('mobilenetv3_small', 0))]
    (found,) = paired(rows)
    assert (found.row.family, found.twin.family) == ('asymmnet_small', 'mobilenetv3_small')
    recipe = TASKS['detection'].recipe(list(preset.recipe), cells[0])
    assert (recipe.input_size, recipe.num_gpus) == (128, 0)


def test_detector_twins_with_one_seed_start_from_the_same_shared_parameters():
    from gluon_asymmnet.detection_recipe import digits_ssd, seeded_ssd_initialize

    def start(model, seed):
        net = digits_ssd(model)
        seeded_ssd_initialize(net, seed)
        return {name: p.data().asnumpy() for name, p in structured_params(net).items()}
    r1, r0, other = (start('asymmnet_small_0.35', 3), start('mobilenetv3_small_0.35', 3),
                     start('mobilenetv3_small_0.35', 4))
    shared = [n for n in r0 if n in r1 and r0[n].shape == r1[n].shape]
    assert 20 < len(shared) < len(r0)   # the asymmetrical blocks differ
    for name in shared:
        np.testing.assert_array_equal(r0[name], r1[name], err_msg=name)
    weights = [n for n in shared if n.endswith('weight')]
    assert all(not np.array_equal(r0[n], other[n]) for n in weights)


def test_a_detection_grid_trains_through_the_runner_and_reports_map(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv('PYTHONPATH', ROOT)   # the cells' children import this checkout
    argv = ['--models', 'asymmnet_small_0.35', 'mobilenetv3_small_0.35', '--task', 'detection',
            '--jobs', '2', '--cell-threads', '1', '--out', str(tmp_path), '--latency-runs', '0',
            '--'] + TINY_DETECTION
    assert main(argv) == 0, capsys.readouterr()
    runs = str(tmp_path / 'runs')
    cells = grid.expand([grid.Arm(('asymmnet_small_0.35', 'mobilenetv3_small_0.35'))], 1)[0]
    for cell in cells:
        state = cell_state(runs, cell, 1)
        assert state.state == 'done' and 0 <= state.final['val_map'] <= 1
        assert set(state.final['val_ap']) == {'zero', 'one', 'two', 'three', 'four', 'five',
                                              'six', 'seven', 'eight', 'nine'}
    report = (tmp_path / 'report.md').read_text()
    assert '| mAP % | n |' in report and 'top-1' not in report
    assert 'python -m gluon_asymmnet.experiments.detection --num-epochs 1' in report
    assert '| asymmnet_small_0.35 r=1 | mobilenetv3_small_0.35 r=0 |' in report
    made = _read_json(str(tmp_path / 'report.json'))
    assert made['task'] == 'detection' and made['code'] == provenance.code_fingerprint(
        ROOT, TASKS['detection'].code)
    assert (tmp_path / 'report.csv').read_text().splitlines()[0].endswith('map_mean,map_std,n')
    capsys.readouterr()
    assert main(argv) == 0   # everything done: a rerun only re-reports
    out = capsys.readouterr().out
    assert 'starting' not in out and 'resuming' not in out and 'report:' in out, out


def _detection_cell(save_dir, *extra):
    command = [sys.executable, '-m', 'gluon_asymmnet.experiments.detection', '--num-epochs', '2',
               '--num-train', '96', '--num-val', '8', '--batch-size', '8',
               '--model', 'asymmnet_small_0.35', '--seed', '1', '--save-dir', str(save_dir),
               '--tag-name', 'seed1', '--resume', 'auto'] + list(extra)
    return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT,
                                                        OMP_NUM_THREADS='1'),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_stopped_detection_cell_resumes_to_the_same_detector(tmp_path):
    straight = _detection_cell(tmp_path / 'straight')
    assert straight.wait() == 0, straight.communicate()[0]
    folder = tmp_path / 'stopped' / 'asymmnet_small_0.35-seed1'
    cell = _detection_cell(tmp_path / 'stopped')
    assert _wait(lambda: (folder / 'metrics.jsonl').exists())   # epoch 0 recorded
    cell.send_signal(signal.SIGTERM)
    out = cell.communicate(timeout=60)[0]
    assert cell.returncode == 130, out
    assert len((folder / 'metrics.jsonl').read_text().splitlines()) == 1
    resumed = _detection_cell(tmp_path / 'stopped')
    assert resumed.wait() == 0, resumed.communicate()[0]
    params = [mx.nd.load(str(root / 'asymmnet_small_0.35-seed1' /
                             'asymmnet_small_0.35-0000.params'))
              for root in (tmp_path / 'straight', tmp_path / 'stopped')]
    assert params[0].keys() == params[1].keys()
    for name in params[0]:
        np.testing.assert_array_equal(params[0][name].asnumpy(), params[1][name].asnumpy(),
                                      err_msg=name)
