"""How far a training run has got, and when it should end: the whole run's ETA.

One :class:`RunProgress` counts the batches this process trains, over all its
epochs; the time still needed is the mean time of a batch so far (validation and
checkpoints included, since they fall between batches) times the batches left. The
log lines show it (:meth:`RunProgress.eta`), and on a terminal one tqdm bar covers
the whole run, so its own ETA is the run's too.
"""
import sys
import time

__all__ = ['RunProgress', 'format_seconds']


def format_seconds(seconds):
    """``H:MM:SS`` of a number of seconds (``'?'`` for None)."""
    if seconds is None:
        return '?'
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, secs)


class RunProgress:
    """The batches a run has trained and still has to train.

    Parameters
    ----------
    total : int
        Batches this process will train, every epoch counted (a resumed run: those left).
    bar : bool
        Show a tqdm bar on stderr over all of them.
    clock : callable
        Seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(self, total, bar=False, clock=time.monotonic):
        self.total = total
        self.done = 0
        self._clock = clock
        self._started = clock()
        self._bar = None
        if bar:
            from tqdm import tqdm
            self._bar = tqdm(total=total, leave=False, file=sys.stderr, unit='batch')

    def step(self, epoch):
        """One more batch trained, of ``epoch``."""
        self.done += 1
        if self._bar is not None:
            self._bar.set_description('Epoch %d' % epoch, refresh=False)
            self._bar.update(1)

    def remaining_seconds(self):
        """Seconds the batches left should take at the pace so far (None before the first)."""
        if not self.done:
            return None
        return (self._clock() - self._started) / self.done * (self.total - self.done)

    def eta(self):
        """``remaining_seconds`` as ``H:MM:SS``."""
        return format_seconds(self.remaining_seconds())

    def clear(self):
        """Erase the bar until the next batch redraws it, so that log lines printed meanwhile
        have lines of their own."""
        if self._bar is not None:
            self._bar.clear()

    def close(self):
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
