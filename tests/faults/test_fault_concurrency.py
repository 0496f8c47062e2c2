"""Two processes on one resource: a run folder (lock) and a model-store entry (atomic rename)."""
import glob
import os
import re
import signal

import mxnet as mx

import faultlib
from faultlib import Process, assert_one_line_error

#: Longer than the second process needs to start: the first one is stopped by SIGTERM.
LONG_RUN_EPOCHS = 100
CONVERTERS = 4


def test_second_training_on_the_same_run_folder_refuses(save_dir, tmp_path, trials):
    """The second one gets a one-line refusal; the first, stopped later with SIGTERM, is whole."""
    argv = faultlib.train_argv(save_dir, LONG_RUN_EPOCHS, '--resume', 'auto')
    run_dir = faultlib.run_dir_of(save_dir)
    first = Process(argv, str(tmp_path / 'logs'), 'first')
    assert first.wait_for_text(r'Epoch\[0\] Batch \[1\]'), first.output()[1][-3000:]
    second = faultlib.run_cli(argv)
    still_running = first.alive()
    first.kill(signal.SIGTERM)
    result = first.wait()
    epochs = faultlib.epochs_in_metrics(run_dir)
    whole = epochs == list(range(len(epochs))) and faultlib.resume_point(run_dir)[0] == len(epochs)
    refused = second.returncode == 2 and 'in use' in second.stderr
    trials.record('second training on a run folder in use',
                  'refused with a one-line message naming the folder and the pid; the first '
                  'went on undisturbed' if refused and whole
                  else 'exit %d: %s' % (second.returncode,
                                        (faultlib.error_lines(second.stderr) or [''])[-1]),
                  lost=0 if whole else 1, tool='train_imagenet.py')
    line = assert_one_line_error(second, [run_dir], codes=(2,))
    assert still_running, 'the first training ended before the second one tried'
    assert re.search(r'pid %d\b' % first.pid, line), line
    assert result.returncode == 130, result.stderr[-3000:]   # stopped by SIGTERM: exit 130
    assert whole, (epochs, faultlib.resume_point(run_dir))


def test_parallel_converts_fill_one_store_entry(tmp_path, trials):
    """Several ``python -m gluon_asymmnet.convert`` of one file into one store at once."""
    from gluon_asymmnet import get_model
    from gluon_asymmnet.model_zoo import file_sha1
    net = get_model(faultlib.MODEL, classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    src = str(tmp_path / 'weights.params')
    net.save_parameters(src)
    store = str(tmp_path / 'store')
    argv = faultlib.CONVERT + [src, '--model', faultlib.MODEL, '--root', store]
    processes = [Process(argv, str(tmp_path / 'logs'), 'convert%d' % i)
                 for i in range(CONVERTERS)]
    results = [process.wait() for process in processes]
    files = sorted(os.listdir(store)) if os.path.isdir(store) else []
    entries = glob.glob(os.path.join(store, '%s-*.params' % faultlib.MODEL))
    good = (all(r.returncode == 0 for r in results) and len(entries) == 1 and len(files) == 1
            and file_sha1(entries[0]).startswith(entries[0].rsplit('-', 1)[1][:8]))
    trials.record('%d converts into one model-store entry at once' % CONVERTERS,
                  'one file, its sha1 matches its name, get_model(pretrained=True) loads it'
                  if good else 'files %s, exits %s' % (files, [r.returncode for r in results]),
                  lost=0 if good else 1, tool='convert')
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert len(entries) == 1 and files == [os.path.basename(entries[0])], files
    sha1 = file_sha1(entries[0])
    assert os.path.basename(entries[0]) == '%s-%s.params' % (faultlib.MODEL, sha1[:8])
    printed = {r.stdout.strip() for r in results}
    assert printed == {'%s sha1=%s' % (entries[0], sha1)}, printed
    loaded = get_model(faultlib.MODEL, classes=10, pretrained=True, root=store)
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    assert (loaded(x) - net(x)).abs().max().asscalar() == 0
