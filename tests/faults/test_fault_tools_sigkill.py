"""SIGKILL at random moments of the deployment tools, each writing onto an existing result.

``export`` onto an existing export, ``quantize --model-prefix`` onto an
existing INT8 export, ``convert`` into a model store that holds an older entry,
``data.prepare`` onto existing ``.lst/.rec/.idx`` files. Each tool is killed
(its whole process group: ``kill -9 -PGID``, as the OOM killer or a lost
machine would) at :data:`KILLS` random moments of its work: from when it has
parsed its flags (``gluon_asymmnet.cli.run`` handles SIGTERM) to about when it
would have ended, one moment in each equal part of that time (as long as the
run that made the old result took). After each kill:

* the output is the old result or the new one, whole: the export (an INT8
  export too) loads and its files are those of its info's sha1 (a kill during
  the microseconds of the renames would leave a mix, which the readers refuse:
  counted as lost, as the old export is gone, but not a failure); the model
  store's newest entry matches its sha1 and ``get_model(pretrained=True)``
  loads it; the ``.rec``/``.idx``/``.lst`` hold the same records;
* temporaries the kill left (dot-names in the output folder) are counted; they
  must not trip the rerun, and the rerun leaves none of its own;
* a rerun of the same command succeeds and leaves the new result, whole.
"""
import filecmp
import os
import shutil
import signal
import time

import mxnet as mx
import pytest

import faultlib
from faultlib import Process, export_argv, save_weights, temporary_files

#: Kills per tool, each at a random moment of another part of its work.
KILLS = 2
#: Records per class folder of the new image tree given to prepare.
NEW_PER_CLASS = 3
#: What a kill in the middle of publishing an export's files would leave: a mix of two exports
#: that the readers refuse (the old export is lost, nothing wrong is loaded).
REFUSED = 'a mix the readers refuse'


class Case:
    """A tool's command for the old and the new result, and how to tell what its output holds.

    ``folder`` is where the result lies; ``whole()`` says whether the new result
    (anything but the old one) is whole: '' if so, else what is wrong.
    """

    def __init__(self, tool, folder, old, new, whole):
        self.tool, self.folder, self.old, self.new, self.whole = tool, folder, old, new, whole

    def held(self, snapshot):
        """'old' (the snapshot's files, byte for byte), 'new' (whole), or what is wrong."""
        names = sorted(n for n in os.listdir(self.folder) if not n.startswith('.'))
        _, differ, unread = filecmp.cmpfiles(self.folder, snapshot, names, shallow=False)
        if names == sorted(os.listdir(snapshot)) and not differ and not unread:
            return 'old'
        try:
            return self.whole() or 'new'
        except OSError as error:   # a file of the result missing
            return str(error)


def _refused(prefix):
    """What the readers say of the (INT8) export at ``prefix``: '' if they load it."""
    from gluon_asymmnet.deploy.runtime import load_exported
    from gluon_asymmnet.errors import UsageError
    try:
        load_exported(prefix)   # refuses files that are not those of its info
    except UsageError as error:
        return '%s: %s' % (REFUSED, error)
    return ''


def _export_case(tmp_path, digits):
    new = save_weights(str(tmp_path / 'new.params'), 2)
    save_weights(str(tmp_path / 'old.params'), 1)
    prefix = str(tmp_path / 'out' / 'model')

    def whole():
        if _refused(prefix):
            return _refused(prefix)
        held = faultlib.fingerprint(mx.nd.load(prefix + '-0000.params'))
        return '' if held == new else 'weights of neither export'
    return Case('export', os.path.dirname(prefix), export_argv(str(tmp_path / 'old.params'),
                                                               prefix),
                export_argv(str(tmp_path / 'new.params'), prefix), whole)


def _quantize_case(tmp_path, digits):
    from gluon_asymmnet.deploy.export import export_model
    for seed, name in ((1, 'old'), (2, 'new')):
        export_model(faultlib.random_net(seed), str(tmp_path / name), 32)
    out = str(tmp_path / 'out' / 'int8')
    os.makedirs(os.path.dirname(out))
    root = os.path.dirname(os.path.dirname(digits.train_rec))

    def argv(source):
        return faultlib.QUANTIZE + ['--model-prefix', str(tmp_path / source), '--dataset',
                                    'digits', '--digits-root', root, '--num-calib', '16',
                                    '--batch-size', '16', '-j', '1', '--out', out]
    return Case('quantize', os.path.dirname(out), argv('old'), argv('new'),
                lambda: _refused(out))


def _convert_case(tmp_path, digits):
    from gluon_asymmnet import get_model
    store = str(tmp_path / 'out')
    new = save_weights(str(tmp_path / 'new.params'), 2)
    save_weights(str(tmp_path / 'old.params'), 1)

    def whole():
        try:
            net = get_model(faultlib.MODEL, classes=10, pretrained=True, root=store)
        except (ValueError, OSError, mx.base.MXNetError) as error:
            return 'get_model(pretrained=True) fails: %s' % error
        held = faultlib.fingerprint({p.name: p.data() for p in net.collect_params().values()})
        return '' if held == new else 'the store gives other weights'

    def argv(name):
        return faultlib.CONVERT + [str(tmp_path / name), '--model', faultlib.MODEL,
                                   '--root', store]
    return Case('convert', store, argv('old.params'), argv('new.params'), whole)


def _prepare_case(tmp_path, digits):
    from gluon_asymmnet.data.records import check_record_file
    from gluon_asymmnet.errors import DataError
    images = tmp_path / 'images'
    for label in sorted(os.listdir(digits.val_dir)):
        os.makedirs(str(images / label))
        for name in sorted(os.listdir(os.path.join(digits.val_dir, label)))[:NEW_PER_CLASS]:
            shutil.copy(os.path.join(digits.val_dir, label, name), str(images / label / name))
    out = str(tmp_path / 'out' / 'val')

    def whole():
        with open(out + '.lst') as listing:
            listed = sum(1 for line in listing if line.strip())
        try:
            count = check_record_file(out + '.rec', out + '.idx')
        except DataError as error:
            return 'the records do not read: %s' % error
        expected = NEW_PER_CLASS * len(os.listdir(str(images)))
        return '' if count == listed == expected else '%d records, %d listed' % (count, listed)
    return Case('prepare', os.path.dirname(out),
                faultlib.PREPARE + [digits.val_dir, out, '-q'],
                faultlib.PREPARE + [str(images), out, '-q'], whole)


CASES = {'export': _export_case, 'quantize --model-prefix': _quantize_case,
         'convert': _convert_case, 'prepare': _prepare_case}


@pytest.mark.parametrize('name', sorted(CASES))
def test_sigkill_at_random_moments_onto_an_existing_result(name, tmp_path, digits, cli, rng,
                                                           trials):
    case = CASES[name](tmp_path, digits)
    began = time.monotonic()
    first = cli.run(case.old, tmp_path)   # no interpreter start: about how long the work takes
    work = time.monotonic() - began
    assert first.returncode == 0, first.stderr[-3000:]
    snapshot = str(tmp_path / 'snapshot')
    shutil.copytree(case.folder, snapshot)
    fault = 'SIGKILL at a random moment of %s onto an existing result' % name
    for kill in range(KILLS):
        process = Process(case.new, str(tmp_path / 'logs'), 'kill%d' % kill)
        moment = rng.uniform(kill, kill + 1) * work / KILLS
        result, _ = process.signal_during_work(signal.SIGKILL, moment)
        held, left = case.held(snapshot), temporary_files(case.folder)
        rerun = cli.run(case.new, tmp_path)
        after = case.held(snapshot) if rerun.returncode == 0 else 'exit %d' % rerun.returncode
        new_left = set(temporary_files(case.folder)) - set(left)
        good = held in ('old', 'new') and after == 'new' and not new_left
        trials.record(fault, '%s: the %s result whole%s; the rerun succeeded' % (
            'killed after %.1fs of work' % moment if result.returncode else 'ended before the kill',
            held, ', %d temporaries left (the rerun ignores them)' % len(left) if left else '')
            if good else 'after the kill: %s (temporaries %s); after the rerun: %s (new '
            'temporaries %s)' % (held, left, after, sorted(new_left)),
            lost=0 if good else 1, tool=case.tool)
        assert result.returncode in (0, -signal.SIGKILL), result.stderr[-3000:]
        assert held in ('old', 'new') or held.startswith(REFUSED), (held, left)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert after == 'new' and not new_left, (after, new_left)
        shutil.rmtree(case.folder)   # the old result again, for the next kill
        shutil.copytree(snapshot, case.folder)
