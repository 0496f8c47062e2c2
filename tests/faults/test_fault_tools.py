"""The tools around training under faults: eval, export, quantize, convert, plot, prepare.

Each tool is interrupted (SIGINT, SIGTERM) at a random moment of its work, pointed
at outputs it cannot write (a read-only folder, ``/dev/full``, a folder where a
file is expected, a full disk), and export runs twice at once on one output.
The contract: one line and a non-zero exit for what cannot be done, an end
within 5 s of a signal with nothing it started left running, and outputs that
are the old ones or the complete new ones, never a mix. (SIGKILL:
``test_fault_tools_sigkill.py``.)
"""
import hashlib
import os
import signal
import stat

import pytest

import faultlib
from faultlib import Process, assert_one_line_error, export_argv, export_holds, save_weights

#: The deadline of a tool after SIGINT/SIGTERM.
SIGNAL_DEADLINE = 5
#: A signal comes within this many seconds of when the tool has started its work (it takes
#: 0.5-5 s on the suite's small inputs).
WORK_WINDOW = 0.4
EXPORT_TRIES = 3
CONCURRENT_EXPORTS = 2


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_export_interrupted_at_random_moments(tmp_path, rng, trials, signum):
    """An export onto an existing one, interrupted: the old export or the new one, whole."""
    old = save_weights(str(tmp_path / 'old.params'), 1)
    new = save_weights(str(tmp_path / 'new.params'), 2)
    prefix = str(tmp_path / 'deploy' / 'model')
    assert faultlib.run_cli(export_argv(str(tmp_path / 'old.params'), prefix)).returncode == 0
    name = signal.Signals(signum).name
    for attempt in range(EXPORT_TRIES):
        process = Process(export_argv(str(tmp_path / 'new.params'), prefix, '--format',
                                       'mxnet'), str(tmp_path / 'logs'), 'export%d' % attempt)
        # a random moment of the export's work, from when it handles SIGTERM (a signal while
        # the interpreter still imports MXNet is Python's own KeyboardInterrupt)
        result, took = process.signal_during_work(signum, rng.uniform(0, WORK_WINDOW))
        holds = export_holds(prefix, [old, new])
        leftovers = [f for f in os.listdir(os.path.dirname(prefix)) if f.startswith('.')]
        # killed by the signal itself: it came after the work, while the interpreter exited
        finished = result.returncode == 0 or result.returncode == -signum and holds == 1
        good = (holds is not None and not leftovers and took < SIGNAL_DEADLINE
                and (finished or result.returncode == 130))
        trials.record('%s at a random moment of an export onto an existing one' % name,
                      'ended in %.1fs, exit %d, the %s export whole, no temporaries'
                      % (took, result.returncode, ('old', 'new')[holds]) if good
                      else 'exit %d after %.1fs, export %s, temporaries %s'
                      % (result.returncode, took, holds, leftovers), lost=0 if good else 1,
                      tool='export')
        assert 'Traceback' not in result.stderr, result.stderr[-3000:]
        assert finished or result.returncode == 130, (result.returncode, result.stderr[-3000:])
        if result.returncode == 130:
            assert_one_line_error(result, ['interrupted'])
        assert took < SIGNAL_DEADLINE, took
        assert holds is not None and not leftovers, (holds, leftovers)
        if holds == 1:   # the new export landed: put the old one back for the next try
            faultlib.run_cli(export_argv(str(tmp_path / 'old.params'), prefix))


def test_two_exports_to_one_prefix_at_once(tmp_path, trials):
    nets = [save_weights(str(tmp_path / ('w%d.params' % i)), 10 + i)
            for i in range(CONCURRENT_EXPORTS)]
    prefix = str(tmp_path / 'deploy' / 'model')
    processes = [Process(export_argv(str(tmp_path / ('w%d.params' % i)), prefix),
                         str(tmp_path / 'logs'), 'export%d' % i)
                 for i in range(CONCURRENT_EXPORTS)]
    results = [process.wait() for process in processes]
    holds = export_holds(prefix, nets)
    good = all(r.returncode == 0 for r in results) and holds is not None
    trials.record('%d exports to one prefix at once' % CONCURRENT_EXPORTS,
                  'both succeeded; the prefix holds one of them whole' if good
                  else 'exits %s, export %s' % ([r.returncode for r in results], holds),
                  lost=0 if good else 1, tool='export')
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert holds is not None


@pytest.fixture(scope='module')
def onnx_file(tmp_path_factory):
    """An ONNX export (dynamic batch) of the suite's model, random weights, 10 classes."""
    from gluon_asymmnet.deploy.export import export_model
    prefix = str(tmp_path_factory.mktemp('onnx') / 'model')
    export_model(faultlib.random_net(0), prefix, 32, fmt='onnx')
    return prefix + '.onnx'


def _tool_argvs(tmp_path, good_params, onnx_file, digits, output, prefix):
    """Each tool writing to ``output`` (export: to ``prefix``)."""
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    metrics = tmp_path / 'metrics.jsonl'
    metrics.write_text('{"epoch": 0, "train_loss": 1.0, "val_top1": 0.5}\n')
    return {
        'export': export_argv(good_params, prefix),
        'quantize': faultlib.QUANTIZE + ['--onnx', onnx_file, '--dataset', 'digits',
                                         '--digits-root', root, '--num-calib', '32', '-j', '1',
                                         '--out', output],
        'plot': faultlib.PLOT + [str(metrics), '-o', output],
        'eval --json': faultlib.EVAL + ['--onnx', onnx_file, '--dataset', 'digits',
                                        '--digits-root', root, '-j', '1', '--json', output],
    }


#: The tools of :func:`test_tools_end_soon_after_a_signal` (export has its own test above).
SIGNAL_TOOLS = ('eval.py', 'quantize', 'convert', 'plot', 'prepare')


def _working_argv(tool, tmp_path, good_params, onnx_file, digits):
    """``tool`` at work on the suite's small inputs, writing into the empty ``tmp_path/out``."""
    out = tmp_path / 'out'
    out.mkdir()
    if tool == 'convert':
        return faultlib.CONVERT + [good_params, '--model', faultlib.MODEL, '--root', str(out)]
    if tool == 'prepare':
        return faultlib.PREPARE + [digits.val_dir, str(out / 'val'), '--num-thread', '2', '-q']
    return _tool_argvs(tmp_path, good_params, onnx_file, digits, str(out / 'result'),
                       str(out / 'model'))['eval --json' if tool == 'eval.py' else tool]


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
@pytest.mark.parametrize('tool', SIGNAL_TOOLS)
def test_tools_end_soon_after_a_signal(tool, signum, tmp_path, good_params, onnx_file, digits, rng,
                                       trials):
    """SIGINT or SIGTERM at a random moment of a tool's work: it ends within 5 s with exit 130,
    one line and no partial output (no temporaries; in practice no output at all, but for
    quantize interrupted after writing), nothing it started left running; or, if the work was
    done before the signal came, with its whole output."""
    process = Process(_working_argv(tool, tmp_path, good_params, onnx_file, digits),
                      str(tmp_path / 'logs'), 'tool')
    result, took = process.signal_during_work(signum, rng.uniform(0, WORK_WINDOW))
    written, left = sorted(os.listdir(str(tmp_path / 'out'))), process.left_running
    partial = [name for name in written if name.startswith('.')]   # temporaries
    # (quantize evaluates the INT8 model after writing it: interrupted then, its output is whole)
    interrupted = result.returncode == 130 and not partial
    # exit 0, or killed by the signal itself: it came after the work, while the interpreter exited
    finished = result.returncode in (0, -signum) and written and not partial
    good = (interrupted or finished) and took < SIGNAL_DEADLINE and not left and (
        'Traceback' not in result.stderr)
    trials.record('%s at a random moment of the work of %s' % (
        signal.Signals(signum).name, ', '.join(SIGNAL_TOOLS)),
        ('ended within %ds: exit 130, one line, %s' % (
            SIGNAL_DEADLINE, 'its output whole' if written else 'nothing written')
         if interrupted else 'it came after the work: exit %d, the output whole'
         % result.returncode) if good
        else '%s: exit %d after %.1fs, wrote %s, left running %s' % (
            tool, result.returncode, took, written, left), lost=0 if good else 1, tool=tool)
    assert took < SIGNAL_DEADLINE and not left, (took, left)
    assert interrupted or finished, (result.returncode, written, result.stderr[-3000:])
    if interrupted:
        assert_one_line_error(result, ['interrupted'], codes=(130,))
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize('place', ['read-only folder', '/dev/full', 'a folder'],
                         ids=['read-only', 'dev-full', 'folder'])
def test_tools_refuse_outputs_they_cannot_write(tmp_path, good_params, onnx_file, digits, trials,
                                                place):
    folder = tmp_path / 'out'
    folder.mkdir()
    (folder / 'existing').mkdir()
    output, prefix = {'read-only folder': (str(folder / 'result'), str(folder / 'result')),
                      '/dev/full': ('/dev/full', '/dev/full/model'),
                      'a folder': (str(folder / 'existing'), str(folder) + os.sep)}[place]
    argvs = _tool_argvs(tmp_path, good_params, onnx_file, digits, output, prefix)
    for label, argv in argvs.items():
        if place == 'read-only folder':
            with faultlib.read_only(str(folder)):
                result = faultlib.run_cli(argv)
        else:
            result = faultlib.run_cli(argv)
        left = sorted(os.listdir(str(folder)))
        device_kept = stat.S_ISCHR(os.stat('/dev/full').st_mode)
        good = (result.returncode == 2 and 'Traceback' not in result.stderr
                and len(faultlib.error_lines(result.stderr)) == 1
                and left == ['existing'] and device_kept)
        trials.record('%s writing to %s' % (label, place),
                      'one line, exit 2, nothing left behind' if good
                      else 'exit %d: %s; left %s' % (result.returncode,
                                                     result.stderr.strip()[-300:], left),
                      lost=0 if good else 1, tool=label.replace('eval --json', 'eval.py'))
        assert_one_line_error(result, codes=(2,))
        assert left == ['existing'] and device_kept, left


def test_convert_into_a_store_that_is_a_device(good_params, trials):
    result = faultlib.run_cli(faultlib.CONVERT + [good_params, '--model', faultlib.MODEL,
                                                  '--root', '/dev/full'])
    good = result.returncode == 2 and stat.S_ISCHR(os.stat('/dev/full').st_mode)
    trials.record('convert --root /dev/full', 'one line, exit 2' if good
                  else 'exit %d' % result.returncode, lost=0 if good else 1, tool='convert')
    assert_one_line_error(result, codes=(2,))


@pytest.mark.parametrize('fmt', ['mxnet', 'onnx'])
def test_full_disk_during_an_export_onto_an_existing_one(tmp_path, trials, fmt):
    """Writes past 256 KiB fail (EFBIG, as ENOSPC): one line, the old export untouched."""
    old = save_weights(str(tmp_path / 'old.params'), 1)
    save_weights(str(tmp_path / 'new.params'), 2)
    prefix = str(tmp_path / 'deploy' / 'model')
    assert faultlib.run_cli(export_argv(str(tmp_path / 'old.params'), prefix)).returncode == 0
    before = sorted(os.listdir(os.path.dirname(prefix)))
    result = faultlib.run_cli(export_argv(str(tmp_path / 'new.params'), prefix, '--format', fmt),
                              preexec_fn=faultlib.file_size_limit(256 * 1024))
    after = sorted(os.listdir(os.path.dirname(prefix)))
    holds = export_holds(prefix, [old])
    good = result.returncode == 2 and holds == 0 and after == before
    trials.record('full disk during an export (%s) onto an existing one' % fmt,
                  'one line, exit 2, the old export whole, nothing else left' if good
                  else 'exit %d, export %s, files %s' % (result.returncode, holds, after),
                  lost=0 if good else 1, tool='export')
    assert_one_line_error(result, ['cannot write'], codes=(2,))
    assert holds == 0 and after == before, (holds, after)


def _older_outputs(tool):
    """Older results where :func:`_full_disk_argv` writes (name -> bytes): a model-store entry
    whose name matches its sha1, an INT8 ONNX file, RecordIO files."""
    if tool == 'convert':
        data = b'an older entry'
        return {'%s-%s.params' % (faultlib.MODEL, hashlib.sha1(data).hexdigest()[:8]): data}
    if tool == 'quantize':
        return {'int8.onnx': b'an older result'}
    return {'val' + extension: b'an older result' for extension in ('.lst', '.rec', '.idx')}


def _full_disk_argv(tool, out, tmp_path, good_params, onnx_file, digits):
    if tool == 'convert':
        return faultlib.CONVERT + [good_params, '--model', faultlib.MODEL, '--root', str(out)]
    if tool == 'prepare':
        return faultlib.PREPARE + [digits.val_dir, str(out / 'val'), '-q']
    return _tool_argvs(tmp_path, good_params, onnx_file, digits, str(out / 'int8.onnx'),
                       str(out / 'x'))['quantize']


#: What the one line of each tool says when the disk is full.
FULL_DISK_WORDS = {'quantize': 'cannot write', 'convert': 'cannot write',
                   'prepare': 'Write incomplete'}


@pytest.mark.parametrize('tool', sorted(FULL_DISK_WORDS))
def test_full_disk_during_a_tool_onto_an_existing_output(tool, tmp_path, good_params, onnx_file,
                                                         digits, trials):
    """quantize --out, convert into a model store, prepare onto older RecordIO files, with
    writes past 256 KiB failing (EFBIG, as ENOSPC): one line, exit 2, the older results
    untouched, nothing else left (no temporaries)."""
    out = tmp_path / 'out'
    out.mkdir()
    older = _older_outputs(tool)
    for name, data in older.items():
        (out / name).write_bytes(data)
    result = faultlib.run_cli(_full_disk_argv(tool, out, tmp_path, good_params, onnx_file, digits),
                              preexec_fn=faultlib.file_size_limit(256 * 1024))
    kept = sorted(os.listdir(str(out))) == sorted(older) and all(
        (out / name).read_bytes() == data for name, data in older.items())
    good = result.returncode == 2 and kept
    trials.record('full disk during %s onto an existing output' % tool,
                  'one line, exit 2, the older result untouched' if good
                  else 'exit %d, kept %s' % (result.returncode, kept), lost=0 if good else 1,
                  tool=tool)
    # MXNet's own C++ log lines of the data it opened aside (a known leftover)
    ours = faultlib.Result(result.returncode, result.stdout, '\n'.join(
        line for line in result.stderr.splitlines() if '../src/io/' not in line))
    assert_one_line_error(ours, [FULL_DISK_WORDS[tool]], codes=(2,))
    assert kept, os.listdir(str(out))
