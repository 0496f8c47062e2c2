"""Saving into a read-only or full run folder: a clear message, the previous checkpoint intact.

A one-epoch run is made first; then its continuation (``--resume auto``, one
epoch more) must fail to write its checkpoint. How the folder is broken (this
suite runs as root in CI and in the sandbox, and root ignores permission bits):

* read-only: ``chattr +i`` on the run folder (as root; ``chmod a-w`` otherwise):
  no file can be created or renamed in it, as on a read-only mount;
* full disk: the run folder is a 16 MiB tmpfs, mounted in a private mount
  namespace (``unshare -m``, so nothing leaks if the test dies), filled with a
  file until 64 KiB are left: writes fail with ENOSPC. Where no tmpfs can be
  mounted (not root), the next case stands in for it;
* file size limit: ``RLIMIT_FSIZE`` of 1 MB on the training process: every write
  past 1 MB fails with EFBIG, as a full disk does with ENOSPC.

Each time: non-zero exit, no traceback, a last stderr line that says what
could not be written; every checkpoint file of the first epoch byte-for-byte as
before. Then, with the fault gone, ``--resume auto`` continues from it.
"""
import filecmp
import os
import shutil

import pytest

import faultlib
from faultlib import Process, complete_checkpoints, error_lines, file_size_limit, read_only

_FULL_DISK_SCRIPT = r'''
set -e
run=$1; seed=$2; out=$3; shift 3
mount -t tmpfs -o size=16m tmpfs "$run"
cp -a "$seed"/. "$run"/
dd if=/dev/zero of="$run/filler" bs=64k 2>/dev/null || true
truncate -s -65536 "$run/filler"
set +e
"$@"
code=$?
rm -f "$run/filler"
cp -a "$run"/. "$out"/
exit $code
'''


@pytest.fixture(scope='module')
def one_epoch_run(tmp_path_factory, digits):
    """A finished one-epoch run: ``(save_dir, copy of its run folder)``."""
    save_dir = tmp_path_factory.mktemp('disk-runs')
    os.symlink(os.path.dirname(digits.train_rec), str(save_dir / 'digits-32'))
    result = faultlib.run_cli(faultlib.train_argv(str(save_dir), 1))
    assert result.returncode == 0, result.stderr[-3000:]
    pristine = str(tmp_path_factory.mktemp('pristine') / 'run')
    shutil.copytree(faultlib.run_dir_of(str(save_dir)), pristine, symlinks=True)
    return str(save_dir), pristine


def _fresh_run(one_epoch_run, tmp_path):
    """A writable copy of the one-epoch run under ``tmp_path``: ``(save_dir, run_dir)``."""
    save_dir = tmp_path / 'runs'
    save_dir.mkdir()
    os.symlink(os.readlink(os.path.join(one_epoch_run[0], 'digits-32')),
               str(save_dir / 'digits-32'))
    run_dir = faultlib.run_dir_of(str(save_dir))
    shutil.copytree(one_epoch_run[1], run_dir, symlinks=True)
    return str(save_dir), run_dir


def _checkpoint_files(run_dir):
    """The files of the run's first-epoch checkpoints (the ones that must survive)."""
    names = []
    for path in complete_checkpoints(run_dir).values():
        stem = os.path.splitext(os.path.basename(path))[0]
        names += [n for n in os.listdir(run_dir) if os.path.splitext(n)[0] == stem]
    best = [n for n in os.listdir(run_dir) if '-best.' in n]
    return sorted(set(names + best))


def _check_failed_save(result, run_dir, pristine, fault, trials):
    """The failure contract; returns a list of what went wrong (empty: all good)."""
    problems = []
    lines = error_lines(result.stderr)
    if result.returncode == 0:
        problems.append('exit 0 although nothing could be saved')
    if 'Traceback' in result.stderr:
        problems.append('a traceback: %s' % (lines[-1] if lines else ''))
    elif not lines or run_dir not in lines[-1] and os.path.basename(run_dir) not in lines[-1]:
        problems.append('the last line does not name the run folder: %r'
                        % (lines[-1] if lines else ''))
    kept = _checkpoint_files(pristine)
    changed = [n for n in kept if not os.path.exists(os.path.join(run_dir, n))
               or not filecmp.cmp(os.path.join(run_dir, n), os.path.join(pristine, n),
                                  shallow=False)]
    if changed:
        problems.append('previous checkpoint files changed or gone: %s' % changed)
    try:
        complete_checkpoints(run_dir)
    except AssertionError as error:
        problems.append(str(error))
    trials.record(fault, '; '.join(problems) if problems else
                  'exit %d, one-line message, previous checkpoint intact' % result.returncode,
                  lost=1 if changed else 0, tool='train_imagenet.py')
    return ['%s: %s\n%s' % (fault, p, result.stderr[-2000:]) for p in problems]


def _resume_after_fix(save_dir, run_dir, tmp_path):
    process = Process(faultlib.train_argv(save_dir, 2, '--resume', 'auto'),
                      str(tmp_path / 'logs'), 'after-fix')
    result = process.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert faultlib.started_at(process) == (1, 0), result.stderr[-3000:]
    assert faultlib.epochs_in_metrics(run_dir) == [0, 1]


def test_read_only_run_folder(one_epoch_run, tmp_path, trials):
    save_dir, run_dir = _fresh_run(one_epoch_run, tmp_path)
    with read_only(run_dir) as how:
        result = faultlib.run_cli(faultlib.train_argv(save_dir, 2, '--resume', 'auto'))
    problems = _check_failed_save(result, run_dir, one_epoch_run[1],
                                  'run folder read-only (%s)' % how, trials)
    assert not problems, '\n'.join(problems)
    _resume_after_fix(save_dir, run_dir, tmp_path)


def test_full_disk(one_epoch_run, tmp_path, trials):
    save_dir, run_dir = _fresh_run(one_epoch_run, tmp_path)
    argv = faultlib.train_argv(save_dir, 2, '--resume', 'auto')
    problems = []
    if faultlib.can_mount_tmpfs():
        # the namespace's tmpfs hides the copy; the script copies it in and the result out
        seed, out = str(tmp_path / 'seed'), str(tmp_path / 'out')
        shutil.copytree(run_dir, seed, symlinks=True)
        os.makedirs(out)
        result = faultlib.run_cli(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                                   _FULL_DISK_SCRIPT, 'sh', run_dir, seed, out] + argv)
        shutil.rmtree(run_dir)
        shutil.copytree(out, run_dir, symlinks=True)
        problems += _check_failed_save(result, run_dir, one_epoch_run[1],
                                       'disk full while saving (16 MiB tmpfs, ENOSPC)', trials)
    result = faultlib.run_cli(argv, preexec_fn=file_size_limit(10 ** 6))
    problems += _check_failed_save(result, run_dir, one_epoch_run[1],
                                   'file size limit while saving (RLIMIT_FSIZE, EFBIG)', trials)
    assert not problems, '\n'.join(problems)
    _resume_after_fix(save_dir, run_dir, tmp_path)



def test_metrics_file_cut_mid_line(one_epoch_run, tmp_path, trials):
    """A disk that filled up during an append leaves half a line in ``metrics.jsonl``.

    ``--resume auto`` must continue anyway: that epoch had no checkpoint yet,
    so it is trained again and its line written whole.
    """
    save_dir, run_dir = _fresh_run(one_epoch_run, tmp_path)
    metrics = os.path.join(run_dir, 'metrics.jsonl')
    with open(metrics) as lines:
        first = lines.readline()
    with open(metrics, 'a') as out:
        out.write(first.replace('"epoch": 0', '"epoch": 1')[:len(first) // 2])
    process = Process(faultlib.train_argv(save_dir, 2, '--resume', 'auto'),
                      str(tmp_path / 'logs'), 'resume')
    result = process.wait()
    epochs = faultlib.epochs_in_metrics(run_dir) if result.returncode == 0 else None
    trials.record('metrics.jsonl ends in half a line (disk filled during an append)',
                  'resumed, the epoch trained again and logged once' if epochs == [0, 1]
                  else 'exit %d%s' % (result.returncode, ', traceback'
                                      if 'Traceback' in result.stderr else ''),
                  lost=0 if epochs == [0, 1] else 1, tool='train_imagenet.py')
    assert result.returncode == 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert epochs == [0, 1]
