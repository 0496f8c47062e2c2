"""The detection demo: GluonCV's SSD on AsymmNet, trained on the embedded digits.

``python -m gluon_asymmnet.detection_demo --out runs/detect-demo`` (``make
detect-demo``): builds the digits detection set in VOC's layout
(:mod:`~gluon_asymmnet.data.digits_voc`), trains an SSD on AsymmNet-S x0.5 with
GluonCV's recipe pieces (``SSDDefaultTrainTransform`` with its target
generator, ``SSDMultiBoxLoss``), evaluates VOC07 mAP per class
(``VOC07MApMetric``) before and after training, exports symbol/params, reloads
them and checks the detections are identical, tries ONNX, and draws predicted
boxes on validation images.  A rerun resumes from the last epoch, or only
re-reports a finished run.
"""
import json
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from .cli import OneLineParser, run
from .data.digits_voc import (DIGIT_CLASSES, DigitsVOCConfig, digits_voc_dataset,
                              prepare_digits_voc)
from .detection_recipe import (SIZE, digits_ssd, evaluate, learning_rate, train_epoch,
                               train_loader, trainer, val_loader)

BACKBONE = 'asymmnet_small_0.5'
#: Detections drawn: score at least this (12 epochs localise well but score low).
DRAW_THRESHOLD = 0.1


def _net():
    mx.random.seed(0)
    net = digits_ssd(BACKBONE)
    net.initialize()
    return net


def train_demo(out, epochs, batch_size=16, data=DigitsVOCConfig()):
    """Train (or resume), evaluate, export and draw; write and return ``state.json``'s dict.

    Parameters
    ----------
    out : str
        Run folder: the data set, weights, ``state.json``, ``deploy/``, ``detections.png``.
    epochs : int
    batch_size : int, default 16
    data : DigitsVOCConfig
        The detection set (its canvases must be ``SIZE`` pixels).
    """
    os.makedirs(out, exist_ok=True)
    data_root = os.path.join(out, 'digits_voc')
    prepare_digits_voc(data_root, data)
    train_set, val_set = (digits_voc_dataset(data_root, s) for s in ('train', 'val'))
    net = _net()
    state_path = os.path.join(out, 'state.json')
    state = {'epoch': 0, 'seconds': 0.0, 'log': []}
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    loader = val_loader(val_set)
    if 'untrained' not in state:
        state['untrained'] = evaluate(net, loader)
    params = os.path.join(out, 'ssd.params')
    if state['epoch']:
        net.load_parameters(params)
    net.hybridize(static_alloc=True, static_shape=True)
    batches = train_loader(net, train_set, batch_size)
    optimizer = trainer(net)
    if state['epoch'] and os.path.exists(params + '.states'):
        optimizer.load_states(params + '.states')
    for epoch in range(state['epoch'], epochs):
        start = time.time()
        optimizer.set_learning_rate(learning_rate(epoch, epochs))
        loss = train_epoch(net, batches, optimizer)
        net.save_parameters(params)
        optimizer.save_states(params + '.states')
        state['epoch'] = epoch + 1
        state['seconds'] += time.time() - start
        state['log'].append({'epoch': epoch + 1, 'loss': round(loss, 4)})
        print('epoch %d loss %.4f' % (epoch + 1, loss), flush=True)
        with open(state_path, 'w') as f:
            json.dump(state, f, indent=1)
    net.hybridize(static_alloc=True, static_shape=True)
    state['trained'] = evaluate(net, loader)
    state['val_images'] = len(val_set)
    state['export'] = _export(net, val_set, out)
    state['figure'] = _draw(net, val_set, os.path.join(out, 'detections.png'))
    with open(state_path, 'w') as f:
        json.dump(state, f, indent=1)
    return state


def _export(net, val_set, out):
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    transform = SSDDefaultValTransform(SIZE, SIZE)
    images = mx.nd.stack(*[transform(*val_set[i])[0] for i in range(4)])
    expected = [o.asnumpy() for o in net(images)]
    prefix = os.path.join(out, 'deploy', 'ssd_asymmnet_small_0.5_digits')
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    identical = all(np.array_equal(got.asnumpy(), want)
                    for got, want in zip(loaded(images), expected))
    result = {'prefix': prefix, 'reloaded_identical': bool(identical)}
    try:
        mx.onnx.export_model(prefix + '-symbol.json', prefix + '-0000.params',
                             [images.shape], [np.float32], prefix + '.onnx')
        result['onnx'] = prefix + '.onnx'
    except Exception as error:   # MXNet's exporter lacks an operator of the graph
        result['onnx'] = 'not exported: %s' % (str(error).splitlines()[0][:200],)
    return result


def _draw(net, val_set, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    from gluoncv.utils.viz import plot_bbox
    transform = SSDDefaultValTransform(SIZE, SIZE)
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for i, ax in enumerate(axes.flat):
        image, label = val_set[i]
        ids, scores, boxes = net(transform(image, label)[0].expand_dims(0))
        plot_bbox(image.asnumpy(), boxes[0], scores[0], ids[0], thresh=DRAW_THRESHOLD,
                  class_names=DIGIT_CLASSES, ax=ax)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _report(state):
    lines = ['VOC07 mAP@0.5 on %d validation canvases: untrained %.2f, trained %.2f (%d epochs, '
             '%.0f s of training)' % (state['val_images'], state['untrained']['mAP'],
                                      state['trained']['mAP'], state['epoch'], state['seconds']),
             'per class: ' + ', '.join('%s %.1f' % (k, v) for k, v in state['trained'].items()
                                       if k != 'mAP'),
             'export %s-symbol.json reloaded with identical detections: %s'
             % (state['export']['prefix'], state['export']['reloaded_identical']),
             'ONNX: ' + state['export']['onnx'],
             'boxes drawn: ' + state['figure']]
    return '\n'.join(lines)


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.detection_demo [--out DIR] [--epochs N]``."""
    parser = OneLineParser(prog='python -m gluon_asymmnet.detection_demo',
                           description='SSD on AsymmNet-S x0.5, digits detection set.')
    parser.add_argument('--out', default=os.path.join('runs', 'detect-demo'),
                        help='run folder: the data set, weights, state.json, deploy/, '
                             'detections.png')
    parser.add_argument('--epochs', type=int, default=12, help='training epochs of the SSD')
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error('--epochs must be at least 1')
    print(_report(run(parser, train_demo, args.out, args.epochs)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
