"""Data pipeline: ImageRecordIter decode + augment samples/s against the training demand.

Makes ImageNet-like JPEGs (500x375, quality 95, smooth random content) in a
temporary folder, packs them with the package's ``prepare_records`` (MXNet's
``im2rec.py``) and reads them through the training iterator of
``gluon_asymmnet.data.loaders.imagenet_rec_iters`` (random resized crop to
224, flip, colour jitter, lighting, normalisation) with 1 and 2 decoding
threads.  Interleaved with those, the float32 training steps of AsymmNet-S/L
x1.0 and MobileNetV3-S/L x1.0 (batch 32, 224x224) give the samples/s the
pipeline has to deliver; ``pipeline / training`` above 1 means the model, not
the data, limits training on this machine.  MXNet's ImageRecordIter caps its
decoding threads at ``max(cores / 2 - 1, 1)`` (recorded as
``decode_threads_cap``), so on 2 cores both settings decode with one thread.

    OMP_NUM_THREADS=2 python bench/data_pipeline.py
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gluon_asymmnet.data.loaders import imagenet_rec_iters  # noqa: E402
from gluon_asymmnet.data.prepare import prepare_records  # noqa: E402
from timing import common_arguments, interleaved_medians, print_table, write_result  # noqa: E402
from train_step import training_step  # noqa: E402

#: Batches read per timing after the ones the iterator had already prefetched.
TIMED_BATCHES = 6
#: ImageRecordIter's default prefetch depth: batches that may be ready before a timing starts.
PREFETCHED = 4


def make_jpegs(folder, count, classes=4, width=500, height=375, seed=0):
    """Write ``count`` smooth random colour JPEGs in ``classes`` class folders."""
    import cv2
    rng = np.random.RandomState(seed)
    for i in range(count):
        small = rng.randint(0, 256, size=(height // 25, width // 25, 3)).astype(np.uint8)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        noise = rng.randint(-12, 13, size=image.shape)
        image = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        class_dir = os.path.join(folder, 'class%d' % (i % classes))
        os.makedirs(class_dir, exist_ok=True)
        cv2.imwrite(os.path.join(class_dir, '%05d.jpg' % i), image,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])


class _PipelineReader(object):
    """Reads ``PREFETCHED + TIMED_BATCHES`` batches per call, restarting at the end."""

    def __init__(self, rec, idx, batch_size, threads):
        self.iter, _ = imagenet_rec_iters(rec, idx, None, None, batch_size,
                                          num_workers=threads)

    def __call__(self):
        for _ in range(PREFETCHED + TIMED_BATCHES):
            try:
                batch = self.iter.next()
            except StopIteration:
                self.iter.reset()
                batch = self.iter.next()
        return batch.data[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=512, help='JPEGs to make (>= 64)')
    parser.add_argument('--batch-size', type=int, default=32)
    common_arguments(parser, repeats=5, warmup=1)
    args = parser.parse_args(argv)
    if args.images < 64 or args.batch_size < 1:
        parser.error('need --images >= 64 and --batch-size >= 1')
    with tempfile.TemporaryDirectory(prefix='asymmnet-bench-') as tmp:
        make_jpegs(os.path.join(tmp, 'images'), args.images)
        (rec, idx, _), = prepare_records(os.path.join(tmp, 'images'), os.path.join(tmp, 'train'),
                                         echo=lambda line: None)
        work = {'pipeline_1_thread': _PipelineReader(rec, idx, args.batch_size, 1),
                'pipeline_2_threads': _PipelineReader(rec, idx, args.batch_size, 2)}
        models = ['asymmnet_large_1.0', 'mobilenetv3_large_1.0',
                  'asymmnet_small_1.0', 'mobilenetv3_small_1.0']
        for name in models:
            work[name] = training_step(name, args.batch_size, 224)
        times = interleaved_medians(work, repeats=args.repeats, warmup=args.warmup)
    pipeline = {name: TIMED_BATCHES * args.batch_size / times[name]
                for name in ('pipeline_1_thread', 'pipeline_2_threads')}
    training = {name: args.batch_size / times[name] for name in models}
    rows = [dict(what=name, samples_s=rate) for name, rate in pipeline.items()]
    rows += [dict(what='train ' + name, samples_s=rate,
                  pipeline_2_threads_over_training=pipeline['pipeline_2_threads'] / rate)
             for name, rate in training.items()]
    print_table(rows, ['what', 'samples_s', 'pipeline_2_threads_over_training'])
    write_result('data_pipeline', dict(
        images=args.images, batch_size=args.batch_size, pipeline_samples_s=pipeline,
        decode_threads_cap=max(os.cpu_count() // 2 - 1, 1),
        training_samples_s=training, rows=rows,
        note='decode+augment samples/s of ImageRecordIter (224 crops of 500x375 JPEGs) and '
             'float32 training samples/s at 224, interleaved in one process'))


if __name__ == '__main__':
    main()
