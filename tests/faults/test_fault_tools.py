"""The tools around training under faults: export, quantize, convert, plot, eval.

Each tool is interrupted (SIGINT, SIGTERM) at random moments, pointed at outputs
it cannot write (a read-only folder, ``/dev/full``, a folder where a file is
expected) and run twice at once on one output. The contract: one line and a
non-zero exit for what cannot be done, an end within 5 s of a signal, and
outputs that are the old ones or the complete new ones, never a mix.
"""
import os
import signal
import stat
import time

import mxnet as mx
import pytest

import faultlib
from faultlib import Process, assert_one_line_error

#: The deadline of a tool after SIGINT/SIGTERM.
SIGNAL_DEADLINE = 5
EXPORT_TRIES = 3
CONCURRENT_EXPORTS = 2


def _weights(path, seed):
    """Save random weights of the suite's model to ``path``; return their fingerprint."""
    from gluon_asymmnet import get_model
    mx.random.seed(seed)
    net = get_model(faultlib.MODEL, classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.save_parameters(path)
    return _fingerprint(mx.nd.load(path))


def _fingerprint(arrays):
    return sorted(round(float(a.abs().sum().asscalar()), 2) for a in arrays.values())


def _export_argv(params, prefix, *extra):
    return faultlib.EXPORT + ['--model', faultlib.MODEL, '--params-file', params,
                              '--input-size', '32', '--prefix', prefix] + list(extra)


def _which(prefix, candidates):
    """Index of the weights (fingerprints) the export at ``prefix`` holds; None for a mix."""
    from gluon_asymmnet.deploy.runtime import load_exported
    from gluon_asymmnet.errors import UsageError
    try:
        load_exported(prefix)   # refuses files that are not those of its info
    except UsageError:
        return None
    held = _fingerprint(mx.nd.load(prefix + '-0000.params'))
    return next((index for index, weights in enumerate(candidates) if weights == held), None)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_export_interrupted_at_random_moments(tmp_path, rng, trials, signum):
    """An export onto an existing one, interrupted: the old export or the new one, whole."""
    old = _weights(str(tmp_path / 'old.params'), 1)
    new = _weights(str(tmp_path / 'new.params'), 2)
    prefix = str(tmp_path / 'deploy' / 'model')
    assert faultlib.run_cli(_export_argv(str(tmp_path / 'old.params'), prefix)).returncode == 0
    name = signal.Signals(signum).name
    for attempt in range(EXPORT_TRIES):
        process = Process(_export_argv(str(tmp_path / 'new.params'), prefix, '--format',
                                       'mxnet'), str(tmp_path / 'logs'), 'export%d' % attempt)
        # a random moment of the export's work: from its staging folder on (a signal while
        # the interpreter still imports MXNet is Python's own KeyboardInterrupt)
        process.wait_until(lambda: any(f.startswith('.export-')
                                       for f in os.listdir(os.path.dirname(prefix))))
        time.sleep(rng.uniform(0, 0.4))   # a small export takes about a second from there
        sent = time.monotonic()
        process.kill(signum)
        result = process.wait()
        took = time.monotonic() - sent
        holds = _which(prefix, [old, new])
        leftovers = [f for f in os.listdir(os.path.dirname(prefix)) if f.startswith('.')]
        # killed by the signal itself: it came after the work, while the interpreter exited
        finished = result.returncode == 0 or result.returncode == -signum and holds == 1
        good = (holds is not None and not leftovers and took < SIGNAL_DEADLINE
                and (finished or result.returncode == 130))
        trials.record('%s at a random moment of an export onto an existing one' % name,
                      'ended in %.1fs, exit %d, the %s export whole, no temporaries'
                      % (took, result.returncode, ('old', 'new')[holds]) if good
                      else 'exit %d after %.1fs, export %s, temporaries %s'
                      % (result.returncode, took, holds, leftovers), lost=0 if good else 1)
        assert 'Traceback' not in result.stderr, result.stderr[-3000:]
        assert finished or result.returncode == 130, (result.returncode, result.stderr[-3000:])
        if result.returncode == 130:
            assert_one_line_error(result, ['interrupted'])
        assert took < SIGNAL_DEADLINE, took
        assert holds is not None and not leftovers, (holds, leftovers)
        if holds == 1:   # the new export landed: put the old one back for the next try
            faultlib.run_cli(_export_argv(str(tmp_path / 'old.params'), prefix))


def test_two_exports_to_one_prefix_at_once(tmp_path, trials):
    nets = [_weights(str(tmp_path / ('w%d.params' % i)), 10 + i)
            for i in range(CONCURRENT_EXPORTS)]
    prefix = str(tmp_path / 'deploy' / 'model')
    processes = [Process(_export_argv(str(tmp_path / ('w%d.params' % i)), prefix),
                         str(tmp_path / 'logs'), 'export%d' % i)
                 for i in range(CONCURRENT_EXPORTS)]
    results = [process.wait() for process in processes]
    holds = _which(prefix, nets)
    good = all(r.returncode == 0 for r in results) and holds is not None
    trials.record('%d exports to one prefix at once' % CONCURRENT_EXPORTS,
                  'both succeeded; the prefix holds one of them whole' if good
                  else 'exits %s, export %s' % ([r.returncode for r in results], holds),
                  lost=0 if good else 1)
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert holds is not None


def _tool_argvs(tmp_path, good_params, digits, output, prefix):
    """Each tool writing to ``output`` (export: to ``prefix``)."""
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    onnx_prefix = str(tmp_path / 'onnx' / 'model')
    if not os.path.exists(onnx_prefix + '.onnx'):
        assert faultlib.run_cli(_export_argv(good_params, onnx_prefix, '--format',
                                             'onnx')).returncode == 0
    metrics = tmp_path / 'metrics.jsonl'
    metrics.write_text('{"epoch": 0, "train_loss": 1.0, "val_top1": 0.5}\n')
    return {
        'export': _export_argv(good_params, prefix),
        'quantize': [faultlib.PYTHON, '-m', 'gluon_asymmnet.quantize', '--onnx',
                     onnx_prefix + '.onnx', '--dataset', 'digits', '--digits-root', root,
                     '--num-calib', '32', '-j', '1', '--out', output],
        'plot': [faultlib.PYTHON, '-m', 'gluon_asymmnet.plot', str(metrics), '-o', output],
        'eval --json': faultlib.EVAL + ['--onnx', onnx_prefix + '.onnx', '--dataset', 'digits',
                                        '--digits-root', root, '-j', '1', '--json', output],
    }


@pytest.mark.parametrize('place', ['read-only folder', '/dev/full', 'a folder'],
                         ids=['read-only', 'dev-full', 'folder'])
def test_tools_refuse_outputs_they_cannot_write(tmp_path, good_params, digits, trials, place):
    folder = tmp_path / 'out'
    folder.mkdir()
    (folder / 'existing').mkdir()
    output, prefix = {'read-only folder': (str(folder / 'result'), str(folder / 'result')),
                      '/dev/full': ('/dev/full', '/dev/full/model'),
                      'a folder': (str(folder / 'existing'), str(folder) + os.sep)}[place]
    argvs = _tool_argvs(tmp_path, good_params, digits, output, prefix)
    for tool, argv in argvs.items():
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
        trials.record('%s writing to %s' % (tool, place),
                      'one line, exit 2, nothing left behind' if good
                      else 'exit %d: %s; left %s' % (result.returncode,
                                                     result.stderr.strip()[-300:], left),
                      lost=0 if good else 1)
        assert_one_line_error(result, codes=(2,))
        assert left == ['existing'] and device_kept, left


def test_convert_into_a_store_that_is_a_device(good_params, trials):
    result = faultlib.run_cli(faultlib.CONVERT + [good_params, '--model', faultlib.MODEL,
                                                  '--root', '/dev/full'])
    good = result.returncode == 2 and stat.S_ISCHR(os.stat('/dev/full').st_mode)
    trials.record('convert --root /dev/full', 'one line, exit 2' if good
                  else 'exit %d' % result.returncode, lost=0 if good else 1)
    assert_one_line_error(result, codes=(2,))


@pytest.mark.parametrize('fmt', ['mxnet', 'onnx'])
def test_full_disk_during_an_export_onto_an_existing_one(tmp_path, trials, fmt):
    """Writes past 256 KiB fail (EFBIG, as ENOSPC): one line, the old export untouched."""
    old = _weights(str(tmp_path / 'old.params'), 1)
    _weights(str(tmp_path / 'new.params'), 2)
    prefix = str(tmp_path / 'deploy' / 'model')
    assert faultlib.run_cli(_export_argv(str(tmp_path / 'old.params'), prefix)).returncode == 0
    before = sorted(os.listdir(os.path.dirname(prefix)))
    result = faultlib.run_cli(_export_argv(str(tmp_path / 'new.params'), prefix, '--format', fmt),
                              preexec_fn=faultlib.file_size_limit(256 * 1024))
    after = sorted(os.listdir(os.path.dirname(prefix)))
    holds = _which(prefix, [old])
    good = result.returncode == 2 and holds == 0 and after == before
    trials.record('full disk during an export (%s) onto an existing one' % fmt,
                  'one line, exit 2, the old export whole, nothing else left' if good
                  else 'exit %d, export %s, files %s' % (result.returncode, holds, after),
                  lost=0 if good else 1)
    assert_one_line_error(result, ['cannot write'], codes=(2,))
    assert holds == 0 and after == before, (holds, after)


def test_full_disk_during_quantize_onto_an_existing_output(tmp_path, good_params, digits, trials):
    """quantize --out onto an older result, with writes past 256 KiB failing: one line, exit 2,
    the older result untouched, no temporaries."""
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    output = out_dir / 'int8.onnx'
    output.write_bytes(b'an older result')
    argv = _tool_argvs(tmp_path, good_params, digits, str(output), str(out_dir / 'x'))['quantize']
    result = faultlib.run_cli(argv, preexec_fn=faultlib.file_size_limit(256 * 1024))
    kept = output.read_bytes() == b'an older result' and os.listdir(str(out_dir)) == ['int8.onnx']
    good = result.returncode == 2 and kept
    trials.record('full disk during quantize onto an existing output',
                  'one line, exit 2, the older result untouched' if good
                  else 'exit %d, kept %s' % (result.returncode, kept), lost=0 if good else 1)
    # MXNet's own C++ log lines of the data it opened aside (a known leftover)
    ours = faultlib.Result(result.returncode, result.stdout, '\n'.join(
        line for line in result.stderr.splitlines() if '../src/io/' not in line))
    assert_one_line_error(ours, ['cannot write'], codes=(2,))
    assert kept
