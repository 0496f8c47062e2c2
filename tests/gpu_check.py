"""``make gpu-check``: the paper's GPU recipe in small, on a machine with GPUs (under 10 minutes).

Needs a CUDA build of MXNet 1.9.1 (``make venv-gpu``). On the embedded digits
(32x32): one epoch with ``--amp`` (float16, dynamic loss scaling) on 1 GPU and,
with two or more, on 2 GPUs (``--kvstore device``, then ``nccl``), each ending
with its export; ``--dtype float16`` resumed from the AMP run (float32 states
given float32 master copies); ``export --gpus 0`` and ``eval.py --gpus 0`` of the
float16 run; two local workers of a ``dist_sync`` job with AMP, one GPU each.
Every command must exit 0 with finite losses; prints one line per check and the
time taken. ``python tests/gpu_check.py [OUT]`` (default ``runs/gpu-check``,
emptied first).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = 'asymmnet_small_0.5'
TRAIN = ['train_imagenet.py', '--dataset', 'digits', '--model', MODEL, '--batch-size', '64',
         '--num-epochs', '1', '--lr', '0.1', '--log-interval', '10', '-j', '2']


def command(*args):
    """Run ``python ARGS`` in the repository; stop the check with its output if it fails."""
    tic = time.time()
    done = subprocess.run([sys.executable] + list(args), cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT,
                                              MXNET_CUDNN_AUTOTUNE_DEFAULT='0'))
    if done.returncode:
        sys.exit('FAILED (exit %d): %s\n%s%s' % (done.returncode, ' '.join(args),
                                                 done.stdout[-4000:], done.stderr[-4000:]))
    return done.stdout + done.stderr, time.time() - tic


def check_run(folder, epochs=1):
    """The run folder holds ``epochs`` finite epochs and its export."""
    with open(os.path.join(folder, 'metrics.jsonl')) as lines:
        records = [json.loads(line) for line in lines]
    assert len(records) == epochs, records
    assert all(math.isfinite(r['train_loss']) for r in records), records
    for suffix in ('-symbol.json', '-0000.params', '-info.json'):
        assert os.path.isfile(os.path.join(folder, MODEL + suffix)), suffix
    return records[-1]


def report(what, seconds, record=None):
    extra = ' val top1=%.3f' % record['val_top1'] if record else ''
    print('ok %-58s %5.0f s%s' % (what, seconds, extra), flush=True)


def main(out):
    import mxnet as mx
    gpus = mx.context.num_gpus()
    if not gpus:
        sys.exit('make gpu-check needs a GPU and a CUDA build of MXNet (make venv-gpu); '
                 'MXNet sees no GPU here')
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    runs = [(1, 'device')] + ([(2, 'device'), (2, 'nccl')] if gpus >= 2 else [])
    for count, kvstore in runs:
        tag = 'amp-%dgpu-%s' % (count, kvstore)
        output, seconds = command(*TRAIN + ['--num-gpus', str(count), '--kvstore', kvstore,
                                            '--amp', '--save-dir', out, '--tag-name', tag])
        assert 'AMP float16' in output, output[-2000:]
        report('--amp on %d GPU(s), --kvstore %s, export' % (count, kvstore), seconds,
               check_run(os.path.join(out, '%s-%s' % (MODEL, tag))))

    half = os.path.join(out, MODEL + '-half')
    shutil.copytree(os.path.join(out, MODEL + '-amp-1gpu-device'), half)
    _, seconds = command(*TRAIN + ['--num-gpus', '1', '--dtype', 'float16', '--num-epochs', '2',
                                   '--resume', 'auto', '--save-dir', out, '--tag-name', 'half'])
    report('--dtype float16 resumed from the AMP run', seconds, check_run(half, epochs=2))
    _, seconds = command('-m', 'gluon_asymmnet.export', '--run-dir', half, '--gpus', '0',
                         '--prefix', os.path.join(half, 'gpu', MODEL))
    report('export --gpus 0 of the float16 run', seconds)
    output, seconds = command('eval.py', '--dataset', 'digits', '--gpus', '0',
                              '--model-prefix', os.path.join(half, 'gpu', MODEL))
    (line,) = [line for line in output.splitlines() if 'top1=' in line]
    report('eval.py --gpus 0: ' + line.split(': ', 1)[-1][:32], seconds)

    if gpus >= 2:
        tag = 'dist-amp'
        _, seconds = command('-m', 'gluon_asymmnet.launch', '-n', '2', '-s', '1', '--',
                             'python', *TRAIN + ['--num-gpus', '1', '--kvstore', 'dist_sync',
                                                 '--amp', '--save-dir', out, '--tag-name', tag])
        report('2 local dist_sync workers, 1 GPU each, --amp', seconds,
               check_run(os.path.join(out, '%s-%s' % (MODEL, tag))))
    print('gpu-check passed on %d GPU(s) in %.0f s' % (gpus, time.time() - start))


if __name__ == '__main__':
    main(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'runs',
                                                                             'gpu-check')))
