"""Hand-edited export records: every reader checks them.

An export's ``PREFIX-info.json`` (and the same record in an ONNX file's metadata)
says what the graph takes. Edited by hand, each field that makes no sense must be
refused by every reader (``eval.py``, ``quantize``, ``eval.py --image``) with one
line naming the file and the field, exit 2: never a silent wrong result (a std
of 0, a NaN mean, an unknown layout evaluated at 10% top-1), never a traceback.
An ONNX graph whose input is ``(N, 3, H, W)`` with symbolic sides runs with
``--input-size``.
"""
import json
import os

import pytest

import faultlib
from faultlib import assert_one_line_error, export_argv

#: ``(what was edited, field the message names, edit of the record)``.
EDITS = (
    ('std 0', 'std', lambda r: r.update(std=[0.0, 0.0, 0.0])),
    ('a NaN mean', 'mean', lambda r: r.update(mean=[float('nan'), 0.0, 0.0])),
    ('a string mean', 'mean', lambda r: r.update(mean='123')),
    ('layout XYZ', 'layout', lambda r: r.update(layout='XYZ')),
    ('crop_ratio 5', 'crop_ratio', lambda r: r.update(crop_ratio=5)),
    ('input_shape removed', 'input_shape', lambda r: r.pop('input_shape')),
    ('a huge input_shape', 'input_shape', lambda r: r.update(input_shape=[1, 3, 10 ** 6, 10 ** 6])),
    ('a zero input_shape', 'input_shape', lambda r: r.update(input_shape=[1, 3, 0, 0])),
    ('a synset shorter than the classes', 'synset', lambda r: r.update(synset=['0', '1'])),
    ('classes 0', 'classes', lambda r: r.update(classes=0)),
    ('preprocess "yes"', 'preprocess', lambda r: r.update(preprocess='yes')),
)


@pytest.fixture(scope='module')
def export_prefix(tmp_path_factory):
    """A whole MXNet export (with its record) of the suite's model, 10 digit classes."""
    folder = tmp_path_factory.mktemp('export')
    params = str(folder / 'w.params')
    faultlib.save_weights(params, 3)
    prefix = str(folder / 'model')
    assert faultlib.run_cli(export_argv(params, prefix)).returncode == 0
    return prefix


def _readers(prefix, root, tmp_path, image):
    return {
        'eval.py': faultlib.EVAL + ['--model-prefix', prefix, '--dataset', 'digits',
                                    '--digits-root', root, '-j', '1'],
        'eval.py --image': faultlib.EVAL + ['--model-prefix', prefix, '--image', image],
        'quantize': faultlib.QUANTIZE + ['--model-prefix', prefix, '--dataset', 'digits',
                                         '--digits-root', root, '-j', '1', '--num-calib', '32',
                                         '--out', str(tmp_path / 'int8')],
    }


def test_every_reader_refuses_a_hand_edited_record(tmp_path, export_prefix, digits, cli,
                                                   trials):
    import cv2
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    image = str(tmp_path / 'digit.png')
    cv2.imwrite(image, cv2.imread(os.path.join(digits.val_dir, '0',
                                               sorted(os.listdir(os.path.join(
                                                   digits.val_dir, '0')))[0])))
    with open(export_prefix + '-info.json') as f:
        good = json.load(f)
    edits = EDITS + (('a JSON list instead of an object', 'record', None),)
    for what, field, edit in edits:
        prefix = str(tmp_path / what.replace(' ', '_') / 'model')
        os.makedirs(os.path.dirname(prefix))
        for suffix in ('-symbol.json', '-0000.params'):
            os.link(export_prefix + suffix, prefix + suffix)
        record = json.loads(json.dumps(good))
        if edit is None:
            record = [record]
        else:
            edit(record)
        with open(prefix + '-info.json', 'w') as f:
            json.dump(record, f)
        for tool, argv in _readers(prefix, root, tmp_path, image).items():
            result = cli.run(argv, tmp_path)
            try:
                line = assert_one_line_error(result, [prefix + '-info.json', field], codes=(2,))
                good_answer = True
            except AssertionError:
                line, good_answer = (result.stdout + result.stderr)[-300:], False
            trials.record('an -info.json edited by hand (%d kinds), every reader' % len(edits),
                          'one line naming the file and the field, exit 2' if good_answer
                          else '%s: exit %d: %s' % (what, result.returncode, line),
                          lost=0 if good_answer else 1, tool=tool.split()[0])
            assert good_answer, (what, tool, result.returncode, line)


def test_onnx_with_symbolic_sides_runs_with_input_size(tmp_path, digits, trials, cli):
    """An ONNX graph of input ``['N', 3, 'H', 'W']`` and no record: evaluated at
    ``--input-size``; without it, one line asking for the image size."""
    import onnx
    from gluon_asymmnet.deploy.export import export_model
    prefix = str(tmp_path / 'model')
    export_model(faultlib.random_net(0), prefix, 32, fmt='onnx')
    model = onnx.load(prefix + '.onnx')
    del model.metadata_props[:]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ('N', None, 'H', 'W')):
        if name:
            dim.dim_param = name
    path = str(tmp_path / 'symbolic.onnx')
    onnx.save(model, path)
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    argv = faultlib.EVAL + ['--onnx', path, '--dataset', 'digits', '--digits-root', root,
                            '-j', '1', '--crop-ratio', '1']
    sized = cli.run(argv + ['--input-size', '32'], tmp_path)
    unsized = cli.run(argv, tmp_path)
    good = sized.returncode == 0 and 'top1=' in sized.stdout
    try:
        assert_one_line_error(unsized, ['image size'], codes=(2,))
    except AssertionError:
        good = False
    trials.record("an ONNX input ['N', 3, 'H', 'W'] without a record",
                  'evaluated with --input-size; without it, one line asking for it' if good
                  else 'exit %d / %d: %s' % (sized.returncode, unsized.returncode,
                                             (sized.stderr + unsized.stderr)[-300:]),
                  lost=0 if good else 1, tool='eval.py')
    assert sized.returncode == 0 and 'top1=' in sized.stdout, sized.stderr[-3000:]
    assert_one_line_error(unsized, ['image size'], codes=(2,))
