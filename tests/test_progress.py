"""The whole run's ETA of training's log lines (``train/progress.py``)."""
from gluon_asymmnet.train.progress import RunProgress, format_seconds


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_eta_is_the_pace_so_far_times_the_batches_left():
    clock = Clock()
    progress = RunProgress(total=10, clock=clock)
    assert progress.remaining_seconds() is None and progress.eta() == '?'
    clock.now += 4
    progress.step(epoch=0)
    progress.step(epoch=0)               # 2 batches in 4 s: 8 batches left take 16 s
    assert progress.remaining_seconds() == 16 and progress.eta() == '0:00:16'
    clock.now += 3600 * 4                # an epoch's validation and checkpoint count too
    for _ in range(8):
        progress.step(epoch=1)
    assert progress.done == progress.total and progress.eta() == '0:00:00'


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3600 * 27 + 62)] == [
        '0:00:00', '0:01:00', '0:01:01', '27:01:02']


def test_one_bar_covers_the_whole_run(capsys):
    progress = RunProgress(total=6, bar=True)
    bar = progress._bar
    progress.step(epoch=4)
    assert (bar.total, bar.n) == (6, 1) and bar.desc.startswith('Epoch 4')   # the run's ETA
    progress.close()
    assert progress._bar is None and '0/6' in capsys.readouterr().err    # drawn, then gone
