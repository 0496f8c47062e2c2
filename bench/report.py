"""Markdown tables of the latest ``bench/results/*.json`` (``bench/results/summary.md``).

    python bench/report.py        # after the other benchmarks (make bench runs it last)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import RESULTS_DIR, describe_spread  # noqa: E402


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


def _spread(summary):
    """A ratio measured in several processes (a summary of ``timing.across_processes``),
    or in one (a float)."""
    if isinstance(summary, dict):
        return describe_spread(summary)
    return '%.2fx' % summary if summary is not None else ''


def _by_width(result):
    columns = ('hybridized_b1', 'hybridized_b32', 'onnxruntime_b1', 'onnxruntime_b32',
               'onnxruntime_concat_b1', 'onnxruntime_concat_b32', 'int8_onnxruntime_b1')
    rows = []
    for r in result.get('by_width', []):
        bound = ('%.2fx / %.2fx (%.2fx)' % (r['traffic'], r['traffic_fused'], r['traffic_concat'])
                 if 'traffic_fused' in r else '')
        verdict = ''
        if r.get('outside_bound'):
            verdict = 'fail: ' + ', '.join(r['outside_bound'])
        elif r.get('unstable'):
            verdict = 'unstable: ' + ', '.join(r['unstable'])
        elif 'outside_bound' in r:
            verdict = 'pass'
        if r.get('outside_bound') and r.get('unstable'):
            verdict += '; unstable: ' + ', '.join(r['unstable'])
        rows.append(['%s %s' % (r['arch'], r['width']), bound]
                    + [_spread(r.get(column)) for column in columns] + [verdict])
    return _table(['model', 'traffic bound unfused / fused (unfused, with the concat)',
                   'hybridized batch 1',
                   'hybridized batch 32', 'ONNX Runtime fp32 batch 1',
                   'ONNX Runtime fp32 batch 32',
                   'ONNX Runtime fp32, concatenated export (reference), batch 1',
                   'ONNX Runtime fp32, concatenated export (reference), batch 32',
                   'ONNX Runtime INT8 batch 1', 'time <= bound + %d%%'
                   % round(100 * result.get('bound_margin', 0.05))], rows)


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
        text = ('AsymmNet / r=0 (our MobileNetV3) at the same width, latency ratios, next to '
                'the memory-traffic bound (bytes of activations, `bench/traffic.py`: unfused '
                'for the hybridized columns, fused for ONNX Runtime\'s). Batch-1 ratios: '
                'median and range over processes; batch-32 ratios: over the interleaved rounds '
                'of one process; processes (rounds) that disagree by more than %d%% make a '
                'ratio unstable (no median):\n\n'
                % round(100 * result.get('tolerance', 0.1)) + _by_width(result)
                + '\n\nAll timings:\n\n')
    text += _table(['model', 'backend', 'batch', 'AsymmNet ms', 'MobileNetV3 (ours, r=0) ms',
                    'GluonCV MobileNetV3 ms', 'AsymmNet / r=0', 'AsymmNet / GluonCV'], rows)
    if result.get('targets'):
        t = result['targets']
        spread = t.get('large_1_0_batch1_latency_vs_gluoncv_spread')
        batch1 = (describe_spread(spread) if spread else
                  '%.2fx' % t['large_1_0_batch1_latency_vs_gluoncv'])
        text += ('\n\nAsymmNet-L x1.0 hybridized vs GluonCV MobileNetV3-L: batch-1 latency '
                 '**%s**, batch-32 throughput **%.2fx**; fastest backend `%s` at batch 1: '
                 '**%.2fx** the hybridized latency.' % (
                     batch1, t['large_1_0_batch32_throughput_vs_gluoncv'],
                     t['fastest_backend'], t['fastest_vs_hybridized_batch1']))
    if result.get('failures'):
        text += '\n\nNot measured: ' + '; '.join('%s (%s)' % item
                                                  for item in sorted(result['failures'].items()))
    return text


def _train(results):
    rows = []
    for result in results:
        margin = round(100 * result.get('bound_margin', 0.1))
        for r in result['rows']:
            rows.append(['%s %s' % (r['arch'], r['width']), r['size'], r.get('batch', ''),
                         r['precision'], '%.1f' % r['asymmnet_samples_s'],
                         '%.1f' % r['mobilenetv3_samples_s'], '%.2fx' % r['step_ratio'],
                         '%.2fx (%.2fx)' % (r['traffic'], r['traffic_concat'])
                         if 'traffic' in r else '',
                         ('pass' if r['within_bound'] else 'fail (> bound + %d%%)' % margin)
                         if 'within_bound' in r else ''])
    return _table(['model', 'input', 'batch', 'precision', 'AsymmNet samples/s',
                   'MobileNetV3 (r=0) samples/s', 'step time AsymmNet / r=0',
                   'traffic bound (with the concat)', 'within the bound'], rows)


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


def _traffic(result):
    rows = [['%s %s' % (r['arch'], r['width']), r['size'], '%.1f' % r['r0_inference_mb'],
             '%.1f' % r['r0_inference_fused_mb'], '%.1f' % r['r0_training_mb'],
             '%.3f' % r['inference'], '%.3f' % r['inference_fused'],
             '%.3f' % r['inference_concat'], '%.3f' % r['training'],
             '%.3f' % r['training_concat'], '%.3f' % r['outputs']]
            for r in result['rows']]
    return ('AsymmNet / r=0 in bytes of activations read and written per image '
            '(`gluon_asymmnet.complexity.traffic`). Inference: the inference graph without '
            'the feature-reuse concat, every operator unfused (MXNet) and fused (BatchNorm and '
            'activations inside the convolutions, additions accumulated into them: ONNX '
            'Runtime, oneDNN\'s fused graph), and with the concat materialised; a training '
            'step without and with it; the last column is the first estimate, the ratio of '
            'the operators\' output sizes:\n\n'
            + _table(['model', 'input', 'r=0 inference MB', 'r=0 fused MB', 'r=0 training MB',
                      'inference', 'inference (fused)', 'inference (concat)', 'training step',
                      'training step (concat)', 'output sizes'], rows))


def _ceiling(result):
    def rows(results):
        return [[r['what'], '%.1f' % r['gflop_s'] if 'gflop_s' in r else r.get('error', ''),
                 '%.1f%%' % (100 * r['fraction_of_gemm']) if 'gflop_s' in r else '',
                 '%.1f' % r['images_s'] if 'images_s' in r else ''] for r in results]
    header = ['', 'GFLOP/s', 'of the GEMM', 'images/s (batch %d)' % result['batch_size']]
    text = 'MXNet (hybridized), against its GEMM:\n\n' + _table(header, rows(result['rows']))
    if result.get('onnxruntime_rows'):
        text += ('\n\nThe fastest paths, ONNX Runtime, against its own GEMM (a child process):'
                 '\n\n' + _table(header, rows(result['onnxruntime_rows'])))
        text += '\n\nINT8 / fp32 throughput in ONNX Runtime: ' + ', '.join(
            '%s %.2fx' % item for item in sorted(result.get('int8_speedup', {}).items()))
    return text


def _ort_profile(result):
    rows = [[r['model'], r['batch'], '%.1f' % r['total_ms'], '%.2fx' % r['vs_r0'],
             '%.2fx' % r['vs_fp32'] if 'vs_fp32' in r else '', r['top']]
            for r in result['rows']]
    text = ('ONNX Runtime kernel times (its profiler, one thread, %dx%d, ms of each file\'s '
            'fastest run, the files interleaved): AsymmNet-L x1.0 as exported, exported with '
            'the concatenated map, and MobileNetV3-L x1.0 (r=0):\n\n' % (result['size'],
                                                                        result['size'])
            + _table(['model', 'batch', 'kernel ms', 'vs r=0', 'INT8 / fp32',
                      'largest operator types (ms)'], rows))
    if result.get('widths'):
        margin = round(100 * result.get('bound_margin', 0.05))
        rows = [['%s %s' % (r['arch'], r['width']), '%.1f' % r['asymmnet_ms'],
                 '%.1f' % r['mobilenetv3_ms'], '%.2fx' % r['ratio'], '%.2fx' % r['traffic_fused'],
                 'pass' if r['within_bound'] else 'fail (> bound + %d%%)' % margin, r['extra']]
                for r in result['widths']]
        text += ('\n\nAsymmNet / r=0 at every width, float32, batch 32, kernel times as above, '
                 'against the fused memory-traffic bound:\n\n'
                 + _table(['model', 'AsymmNet ms', 'r=0 ms', 'AsymmNet / r=0', 'fused bound',
                           'time <= bound + %d%%' % margin,
                           'where AsymmNet spends more (ms)'], rows))
    return text


def main():
    parts = []
    machine = None
    sections = [('Memory-traffic bound', 'traffic', _traffic),
                ('Inference', 'inference', _inference),
                ('Inside ONNX Runtime', 'ort_profile', _ort_profile),
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
