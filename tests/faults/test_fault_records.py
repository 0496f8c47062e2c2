"""Run and checkpoint records under faults: a resume that would change the recipe, damaged
checkpoints, bad optimizer states, hand-edited records.

Each case checks the contract of the records: a one-line error naming the file (and
field) and exit 2 before anything is written, or a resume from the newest whole
checkpoint that says which one it passed over; never a silent restart from zero.
"""
import hashlib
import json
import os

import faultlib
from faultlib import assert_one_line_error


def _digest(run_dir):
    """sha1 of every file of a run folder (what a refused command must leave as it was)."""
    found = {}
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path) and name != '.lock':
            with open(path, 'rb') as handle:
                found[name] = hashlib.sha1(handle.read()).hexdigest()
    return found


def _trained(tmp_path, epochs, *extra):
    save_dir = str(tmp_path)
    result = faultlib.run_cli(faultlib.train_argv(save_dir, epochs, *extra))
    assert result.returncode == 0, result.stderr[-2000:]
    return save_dir, faultlib.run_dir_of(save_dir)


def test_resume_that_would_change_the_recipe_is_refused(tmp_path, trials):
    save_dir, run_dir = _trained(tmp_path, 1)
    before = _digest(run_dir)
    changes = (['--shuffle-group', '2'], ['--lr', '0.000001'], ['--input-size', '40'],
               ['--crop-ratio', '0.5'], ['--asymmrate', '0'], ['--mixup'])
    for change in changes:
        result = faultlib.run_cli(faultlib.train_argv(save_dir, 2, '--resume', 'auto', *change))
        line = assert_one_line_error(result, names=[change[0]], codes=(2,))
        assert 'would change what it learns' in line
        assert _digest(run_dir) == before, change
        trials.record('resume with %s changed' % ' '.join(change),
                      'refused with exit 2 naming %s; the run folder unchanged' % change[0],
                      lost=0, tool='train_imagenet.py')
    result = faultlib.run_cli(faultlib.train_argv(save_dir, 2, '--resume', 'auto'))
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(run_dir, 'run.json')) as record:
        phases = json.load(record)['phases']
    assert [p['start_epoch'] for p in phases] == [0, 1]
    assert phases[1]['changes'] == [['num_epochs', '1', '2']]
    assert faultlib.epochs_in_metrics(run_dir) == [0, 1]
    trials.record('resume with more epochs', 'allowed, recorded as a phase of run.json',
                  lost=0, tool='train_imagenet.py')


def _empty(path):
    open(path, 'w').close()


def _cut(path):
    with open(path, 'rb+') as handle:
        handle.truncate(os.path.getsize(path) // 2)


def test_damaged_newest_checkpoint_resumes_from_the_one_before(tmp_path, trials):
    for suffix, damage, how in (('.json', _empty, 'emptied'), ('.states', _empty,
                                                               'its .states emptied'),
                                ('.params', _cut, 'its .params cut in half')):
        save_dir, run_dir = _trained(tmp_path / suffix[1:], 2, '--save-frequency', '1')
        damage(os.path.join(run_dir, '%s-epoch0001%s' % (faultlib.MODEL, suffix)))
        result = faultlib.run_cli(faultlib.train_argv(save_dir, 2, '--resume', 'auto',
                                                      '--save-frequency', '1'))
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'passing over a damaged checkpoint' in result.stderr
        assert faultlib.start_of(result.stderr) == (1, 0), result.stderr[-2000:]
        assert faultlib.epochs_in_metrics(run_dir) == [0, 1]
        trials.record('newest checkpoint %s, then --resume auto' % how,
                      'resumed at epoch 1 from the one before, saying which it passed over',
                      lost=0, tool='train_imagenet.py')


def test_no_whole_checkpoint_is_refused_not_restarted(tmp_path, trials):
    save_dir, run_dir = _trained(tmp_path, 1)
    for name in os.listdir(run_dir):
        if name.endswith('.json') and name != 'run.json' and not name.endswith(
                ('-symbol.json', '-info.json')):
            open(os.path.join(run_dir, name), 'w').close()
    before = _digest(run_dir)
    result = faultlib.run_cli(faultlib.train_argv(save_dir, 3, '--resume', 'auto'))
    line = assert_one_line_error(result, codes=(2,))
    assert 'no whole checkpoint' in line
    assert _digest(run_dir) == before
    trials.record('every checkpoint record emptied, then --resume auto',
                  'refused with one line, exit 2; metrics, best weights and export untouched',
                  lost=0, tool='train_imagenet.py')


def test_bad_optimizer_states_are_one_line(tmp_path, trials):
    save_dir, run_dir = _trained(tmp_path, 1)
    params = os.path.join(run_dir, '%s-best.params' % faultlib.MODEL)
    states = os.path.join(run_dir, '%s-best.states' % faultlib.MODEL)
    empty, cut = str(tmp_path / 'empty.states'), str(tmp_path / 'cut.states')
    open(empty, 'w').close()
    with open(states, 'rb') as source, open(cut, 'wb') as out:
        out.write(source.read()[:200])
    other = str(tmp_path / 'other')
    for bad, what in ((empty, 'empty'), (cut, 'truncated')):
        result = faultlib.run_cli(faultlib.train_argv(other, 1, '--resume-params', params,
                                                      '--resume-states', bad, tag=what))
        assert_one_line_error(result, names=[os.path.basename(bad)], codes=(2,))
        trials.record('--resume-states %s' % what, 'one line naming it, exit 2', lost=0,
                      tool='train_imagenet.py')
    wider = faultlib.train_argv(other, 1, '--resume-params', params, '--resume-states',
                                states, tag='wider')
    wider[wider.index(faultlib.MODEL)] = 'asymmnet_small_0.5'
    result = faultlib.run_cli(wider)
    assert_one_line_error(result, names=['does not fit'], codes=(2,))
    assert not os.path.exists(os.path.join(other, 'asymmnet_small_0.5-wider', 'run.json'))
    trials.record('--resume-params/--resume-states of another width',
                  'refused before anything is written, exit 2', lost=0,
                  tool='train_imagenet.py')
    result = faultlib.run_cli(faultlib.train_argv(other, 1, '--resume-epoch', '3', tag='epoch'))
    assert_one_line_error(result, names=['--resume-epoch'], codes=(2,))
    trials.record('--resume-epoch without --resume-params', 'one line, exit 2', lost=0,
                  tool='train_imagenet.py')


def test_hand_edited_run_record_is_one_line(tmp_path, trials):
    save_dir, run_dir = _trained(tmp_path, 1)
    path = os.path.join(run_dir, 'run.json')
    with open(path) as record:
        good = json.load(record)
    edits = (('input.std', lambda r: r['input'].update(std=[0, 1, 1])),
             ('input.crop_ratio', lambda r: r['input'].update(crop_ratio=5)),
             ('net.name', lambda r: r['net'].update(name='no_such_model')),
             ('recipe', lambda r: r.pop('recipe')),
             ('version', lambda r: r.update(version=99)))
    for field, edit in edits:
        record = json.loads(json.dumps(good))
        edit(record)
        with open(path, 'w') as out:
            json.dump(record, out)
        for argv in (faultlib.train_argv(save_dir, 2, '--resume', 'auto'),
                     faultlib.EXPORT + ['--run-dir', run_dir, '--prefix',
                                        str(tmp_path / 'export' / 'm')]):
            result = faultlib.run_cli(argv)
            assert_one_line_error(result, names=['run.json', field], codes=(2,))
        trials.record('run.json with %s edited by hand' % field,
                      'resume and export --run-dir: one line naming run.json and the field',
                      lost=0, tool='train_imagenet.py')
    with open(path, 'w') as out:
        out.write('[1, 2]')
    result = faultlib.run_cli(faultlib.train_argv(save_dir, 2, '--resume', 'auto'))
    assert_one_line_error(result, names=['run.json'], codes=(2,))
    trials.record('run.json a JSON list', 'one line naming it, exit 2', lost=0,
                  tool='train_imagenet.py')
