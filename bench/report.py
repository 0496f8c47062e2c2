"""Markdown tables of the latest ``bench/results/*.json`` (``bench/results/summary.md``).

    python bench/report.py        # after the other benchmarks (make bench runs it last)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import RESULTS_DIR  # noqa: E402


def _load(name):
    path = os.path.join(RESULTS_DIR, name + '.json')
    if not os.path.exists(path):
        return None
    with open(path) as result:
        return json.load(result)


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _ratio(row, key):
    return '%.2fx' % row[key] if key in row else ''


def _by_width(result):
    rows = [['%s %s' % (r['arch'], r['width']), _ratio(r, 'hybridized_b1'),
             ', '.join('%.2f' % ratio for ratio in r.get('hybridized_b1_processes', [])),
             _ratio(r, 'hybridized_b32'), _ratio(r, 'onnxruntime_b1'),
             _ratio(r, 'int8_onnxruntime_b1')] for r in result.get('by_width', [])]
    return _table(['model', 'hybridized batch 1 (median)', 'per process',
                   'hybridized batch 32', 'ONNX Runtime fp32 batch 1',
                   'ONNX Runtime INT8 batch 1'], rows)


def _inference(result):
    rows = []
    for r in result['rows']:
        rows.append(['%s %s' % (r['arch'], r['width']), r['backend'], r['batch'],
                     '%.1f' % r['asymmnet_ms'], '%.1f' % r['mobilenetv3_ms'],
                     '%.1f' % r['gluoncv_ms'] if 'gluoncv_ms' in r else '',
                     '%.2fx' % r['asymm_vs_r0'],
                     '%.2fx' % r['asymm_vs_gluoncv'] if 'asymm_vs_gluoncv' in r else ''])
    text = ''
    if result.get('by_width'):
        text = ('AsymmNet / r=0 (our MobileNetV3) at the same width, latency ratios:\n\n'
                + _by_width(result) + '\n\nAll timings:\n\n')
    text += _table(['model', 'backend', 'batch', 'AsymmNet ms', 'MobileNetV3 (ours, r=0) ms',
                    'GluonCV MobileNetV3 ms', 'AsymmNet / r=0', 'AsymmNet / GluonCV'], rows)
    if result.get('targets'):
        t = result['targets']
        text += ('\n\nAsymmNet-L x1.0 hybridized vs GluonCV MobileNetV3-L: batch-1 latency '
                 '**%.2fx**, batch-32 throughput **%.2fx**; fastest backend `%s` at batch 1: '
                 '**%.2fx** the hybridized latency.' % (
                     t['large_1_0_batch1_latency_vs_gluoncv'],
                     t['large_1_0_batch32_throughput_vs_gluoncv'],
                     t['fastest_backend'], t['fastest_vs_hybridized_batch1']))
        trials = result.get('batch1_latency_vs_gluoncv_trials')
        if trials:
            text += (' The batch-1 figure is the median of %d processes (this table\'s and %d '
                     'more): %s.' % (len(trials), len(trials) - 1,
                                     ', '.join('%.2fx' % ratio for ratio in trials)))
    if result.get('failures'):
        text += '\n\nNot measured: ' + '; '.join('%s (%s)' % item
                                                  for item in sorted(result['failures'].items()))
    return text


def _train(results):
    rows = [['%s %s' % (r['arch'], r['width']), r['size'], r.get('batch', ''), r['precision'],
             '%.1f' % r['asymmnet_samples_s'], '%.1f' % r['mobilenetv3_samples_s'],
             '%.2fx' % r['step_ratio']] for result in results for r in result['rows']]
    return _table(['model', 'input', 'batch', 'precision', 'AsymmNet samples/s',
                   'MobileNetV3 (r=0) samples/s', 'step time AsymmNet / r=0'], rows)


def _concat(result):
    rows = [[r['variant'], '%.1f' % r['step_ms'], '%.2fx' % r['vs_asymmrate0']]
            for r in result['rows']]
    return ('%s, batch %d, %dx%d:\n\n' % (result['model'], result['batch_size'], result['size'],
                                           result['size'])
            + _table(['variant', 'step ms', 'vs asymmrate=0 (oneDNN on)'], rows))


def _call_order(result):
    rows = [[r['batch'], r['variant'], '%.1f' % r['ms'] if r['ms'] != '' else '',
             '%.2fx (%.2f-%.2f)' % (r['vs_asymmrate0'], r['lowest'], r['highest'])]
            for r in result['rows']]
    return '%s at %dx%d, hybridized inference, against %s:\n\n%s' % (
        result['model'], result['size'], result['size'], result['baseline'],
        _table(['batch', 'network', 'ms', 'ratio (rounds\' range)'], rows))


def _pipeline(result):
    rows = [[r['what'], '%.1f' % r['samples_s'],
             '%.2f' % r['pipeline_2_threads_over_training']
             if 'pipeline_2_threads_over_training' in r else ''] for r in result['rows']]
    return _table(['', 'samples/s', 'pipeline / training'], rows)


def _ceiling(result):
    rows = [[r['what'], '%.1f' % r['gflop_s'], '%.1f%%' % (100 * r['fraction_of_gemm'])]
            for r in result['rows']]
    return _table(['', 'GFLOP/s', 'of the GEMM'], rows)


def main():
    parts = []
    machine = None
    sections = [('Inference', 'inference', _inference),
                ('Training step', None, None),
                ('Concat formulation (training)', 'concat_formulation', _concat),
                ('Call order (inference)', 'call_order', _call_order),
                ('Data pipeline vs training demand', 'data_pipeline', _pipeline),
                ('Machine ceiling', 'gemm_ceiling', _ceiling)]
    for title, name, render in sections:
        if name is None:
            results = [r for r in (_load('train_step_float32'), _load('train_step_bfloat16')) if r]
            if results:
                parts.append('### %s\n\n%s' % (title, _train(results)))
                machine = machine or results[0]['machine']
            continue
        result = _load(name)
        if result:
            parts.append('### %s\n\n%s' % (title, render(result)))
            machine = machine or result['machine']
    if machine:
        parts.insert(0, 'Machine: %s, %s cores (%s), MXNet %s, OMP_NUM_THREADS=%s.' % (
            machine['cpu'], machine['cores'], ', '.join(machine['isa']), machine['mxnet'],
            machine['omp_num_threads']))
    text = '\n\n'.join(parts) + '\n'
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, 'summary.md'), 'w') as out:
        out.write(text)
    print(text)


if __name__ == '__main__':
    main()
