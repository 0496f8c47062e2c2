"""Records as the contract between the tools: run and checkpoint records, weights of every
format, checkpoints that evaluate with their run's preprocessing, fine-tuning.
"""
import ast
import json
import os
import re
import shutil

import mxnet as mx
import numpy as np
import pytest

import gluon_asymmnet
from gluon_asymmnet import get_model
from gluon_asymmnet.convert import convert_params
from gluon_asymmnet.data import prepare_digits
from gluon_asymmnet.deploy.runtime import zoo_predictor
from gluon_asymmnet.errors import UsageError
from gluon_asymmnet.params import structured_params
from gluon_asymmnet.records import (InputSpec, NetSpec, RecordError, RunRecord,
                                    TrainRecipe, read_checkpoint_record, read_run_record,
                                    write_run_record)
from gluon_asymmnet.train import main as train_main  # the entry point of train_imagenet.py
from helpers import randomized

MODEL = 'asymmnet_small_0.35'


def _record():
    return RunRecord.start(NetSpec(MODEL, 3, shuffle_group=2),
                           InputSpec(40, 1.0, class_names=('a', 'b', 'c')),
                           TrainRecipe(data='/data', num_epochs=5, batch_size=8))


def test_run_record_round_trip_and_phases(tmp_path):
    record = _record()
    write_run_record(record, str(tmp_path))
    assert read_run_record(str(tmp_path)) == (record, False)
    longer = TrainRecipe(data='/data', num_epochs=9, batch_size=8)
    resumed = record.resumed(longer, 5)
    assert [p.start_epoch for p in resumed.phases] == [0, 5]
    assert resumed.phases[1].changes == (('num_epochs', '5', '9'),)
    assert resumed.recipe.num_epochs == 9 and record.recipe.num_epochs == 5
    assert NetSpec(MODEL, 3, shuffle_group=2).get_model_kwargs() == {'classes': 3,
                                                                      'shuffle_group': 2}


@pytest.mark.parametrize('edit, field', [
    (lambda r: r['input'].update(std=[0, 1, 1]), 'input.std'),
    (lambda r: r['input'].update(mean=[float('nan'), 0, 0]), 'input.mean'),
    (lambda r: r['input'].update(mean='grey'), 'input.mean'),
    (lambda r: r['input'].update(crop_ratio=5), 'input.crop_ratio'),
    (lambda r: r['input'].update(input_size=10 ** 6), 'input.input_size'),
    (lambda r: r['input'].update(class_names=['a']), 'input.class_names'),
    (lambda r: r['net'].update(name='asymmnet_tiny'), 'net.name'),
    (lambda r: r['net'].update(classes='3'), 'net.classes'),
    (lambda r: r['recipe'].pop('num_epochs'), 'recipe.num_epochs'),
    (lambda r: r['recipe'].update(lr_mode='fancy'), 'recipe.lr_mode'),
    (lambda r: r.update(version=2), 'version'),
])
def test_an_edited_run_record_is_one_line_naming_file_and_field(tmp_path, edit, field):
    record = _record().to_dict()
    edit(record)
    with open(tmp_path / 'run.json', 'w') as out:
        json.dump(record, out)
    with pytest.raises(RecordError) as error:
        read_run_record(str(tmp_path))
    message = str(error.value)
    assert '\n' not in message and 'run.json' in message and field in message


def test_a_record_that_is_not_an_object_or_not_json(tmp_path):
    for text, expected in (('[1, 2]', 'expected a JSON object'), ('{"net": ', 'not valid JSON'),
                           ('', 'not valid JSON')):
        (tmp_path / 'run.json').write_text(text)
        with pytest.raises(RecordError, match=expected):
            read_run_record(str(tmp_path))
    with pytest.raises(RecordError, match='not a training run folder'):
        read_run_record(str(tmp_path / 'nothing'))


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('data')), size=32)


def _class_folder(digits, root, classes, per_class=None, size=None):
    """A class folder (train/ and val/) of some of the digits, renamed ``d<digit>``, resized."""
    import cv2
    for split, source in (('train', digits.train_dir), ('val', digits.val_dir)):
        for digit in classes:
            target = os.path.join(root, split, 'd%s' % digit)
            os.makedirs(target)
            names = sorted(os.listdir(os.path.join(source, str(digit))))
            for name in names[:per_class if split == 'train' else None]:
                image = cv2.imread(os.path.join(source, str(digit), name))
                if size:
                    image = cv2.resize(image, (size, size))
                cv2.imwrite(os.path.join(target, name), image)
    return root


def _train(*flags):
    return train_main(['--model', MODEL, '-j', '0', '--log-interval', '1000',
                            '--batch-size', '16', '--save-frequency', '0'] + list(flags))


def test_a_checkpoint_evaluates_with_its_runs_preprocessing(digits, tmp_path):
    data = _class_folder(digits, str(tmp_path / 'images'), '123', per_class=20, size=48)
    assert _train('--data-dir', data, '--input-size', '40', '--crop-ratio', '1',
                  '--num-epochs', '1', '--save-dir', str(tmp_path), '--tag-name', 'folder') == 0
    run = tmp_path / ('%s-folder' % MODEL)
    best = str(run / ('%s-best.params' % MODEL))
    record = read_checkpoint_record(best[:-len('.params')] + '.json')
    assert record.input.input_size == 40 and record.input.crop_ratio == 1.0
    assert record.net == NetSpec(MODEL, 3)
    for model in (None, MODEL):       # the checkpoint alone, or with its model named
        predictor = zoo_predictor(model, best)
        assert predictor.info.input_size == 40 and predictor.info['crop_ratio'] == 1.0
        assert predictor.info['synset'] == ['d1', 'd2', 'd3']
    with pytest.raises(UsageError, match='is a checkpoint of %s, not of asymmnet_large_0.5'
                                         % MODEL):
        zoo_predictor('asymmnet_large_0.5', best)


def test_every_weights_file_of_the_package_loads_wherever_weights_are_accepted(tmp_path):
    net = randomized(MODEL, classes=10)
    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))
    expected = net(x).asnumpy()
    saved = str(tmp_path / 'saved.params')
    net.save_parameters(saved)
    net.hybridize()
    net(x)
    net.export(str(tmp_path / 'exported'))     # arg:/aux: and Gluon's global names
    exported = str(tmp_path / 'exported-0000.params')
    for path in (saved, exported):
        loaded = get_model(MODEL, classes=10, pretrained=path)
        np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)
        stored, sha1 = convert_params(path, MODEL, root=str(tmp_path / 'store'))
        assert os.path.basename(stored) == '%s-%s.params' % (MODEL, sha1[:8])
        again = get_model(MODEL, classes=10, pretrained=True, root=str(tmp_path / 'store'))
        np.testing.assert_allclose(again(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)


def test_pretrained_with_other_classes_gives_a_fresh_head(tmp_path):
    net = randomized(MODEL, classes=10)
    path = str(tmp_path / 'ten.params')
    net.save_parameters(path)
    five = get_model(MODEL, classes=5, pretrained=path)
    assert five(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 5)
    ours, theirs = structured_params(five), structured_params(net)
    for name in ours:
        if not name.startswith('output.'):
            np.testing.assert_array_equal(ours[name].data().asnumpy(),
                                          theirs[name].data().asnumpy())
    assert ours['output.0.weight'].shape[0] == 5
    os.makedirs(tmp_path / 'run')
    shutil.copy(path, tmp_path / 'run' / ('%s-best.params' % MODEL))
    from_run = get_model(MODEL, classes=10, pretrained=str(tmp_path / 'run'))
    np.testing.assert_array_equal(from_run.output[0].weight.data().asnumpy(),
                                  net.output[0].weight.data().asnumpy())
    with pytest.raises(ValueError, match='does not fit asymmnet_small_0.5'):
        get_model('asymmnet_small_0.5', classes=10, pretrained=path)


def _top1(run_dir):
    with open(os.path.join(run_dir, 'metrics.jsonl')) as lines:
        return json.loads(lines.readlines()[-1])['val_top1']


@pytest.mark.slow
@pytest.mark.slow
def test_fine_tuning_beats_training_from_scratch(digits, tmp_path):
    """AsymmNet trained on seven digits, fine-tuned on three digits it never saw (20 images
    each), against the same recipe from scratch: equal epochs, equal seeds."""
    seen = _class_folder(digits, str(tmp_path / 'seen'), '0124679')
    new = _class_folder(digits, str(tmp_path / 'new'), '358', per_class=20)
    recipe = ['--input-size', '32', '--crop-ratio', '1', '--lr', '0.1', '--lr-mode', 'cosine',
              '--no-mirror', '--min-random-area', '1', '--save-dir', str(tmp_path)]
    assert _train('--data-dir', seen, '--num-epochs', '4', '--tag-name', 'seen', *recipe) == 0
    base = str(tmp_path / ('%s-seen' % MODEL))
    scores = {}
    for tag, start in (('scratch', []), ('finetuned', ['--pretrained', base])):
        for seed in (0, 1):
            assert _train('--data-dir', new, '--num-epochs', '3', '--seed', str(seed),
                          '--tag-name', '%s%d' % (tag, seed), *(recipe + start)) == 0
            scores.setdefault(tag, []).append(_top1(str(tmp_path / ('%s-%s%d'
                                                                    % (MODEL, tag, seed)))))
    with open(tmp_path / ('%s-finetuned0' % MODEL) / 'run.json') as record:
        assert json.load(record)['recipe']['pretrained'].endswith('%s-best.params' % MODEL)
    print('fine-tuned %s, from scratch %s' % (scores['finetuned'], scores['scratch']))
    assert min(scores['finetuned']) > max(scores['scratch'])


# --- the library speaks no command line ------------------------------------------------------

PACKAGE = os.path.dirname(gluon_asymmnet.__file__)
#: Command-line front ends (and their shared helpers): the only modules that see argparse.
FRONT_ENDS = {'cli.py', 'evaluate.py', 'export.py', 'quantize.py', 'convert.py', 'summary.py',
              'plot.py', 'launch.py', 'launch_tracker.py', os.path.join('data', 'prepare.py')}
FRONT_END_FOLDERS = ('train', 'experiments')


def _library_modules():
    for folder, _, files in os.walk(PACKAGE):
        relative = os.path.relpath(folder, PACKAGE)
        if relative.split(os.sep)[0] in FRONT_END_FOLDERS:
            continue
        for name in files:
            path = os.path.normpath(os.path.join(relative, name))
            if name.endswith('.py') and path not in FRONT_ENDS:
                yield path, os.path.join(folder, name)


def test_no_library_module_takes_a_namespace_or_names_a_flag_in_an_error():
    for relative, path in _library_modules():
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.Lambda)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                assert 'args' not in names, '%s: a function takes args (%s)' % (
                    relative, getattr(node, 'name', 'lambda'))
            if isinstance(node, ast.Name):
                assert node.id != 'Namespace', '%s uses argparse.Namespace' % relative
            if isinstance(node, ast.Raise) and node.exc is not None:
                for text in ast.walk(node.exc):   # a command quoted in `backquotes` may
                    if isinstance(text, ast.Constant) and isinstance(text.value, str):
                        words = re.sub('`[^`]*`', '', text.value).split()
                        assert not any(word.startswith('--') and word[2:3].isalpha()
                                       for word in words), \
                            '%s:%d: an error names a flag: %r' % (relative, node.lineno,
                                                                   text.value)
