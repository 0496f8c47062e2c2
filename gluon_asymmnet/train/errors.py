"""The exception type for bad training arguments."""

__all__ = ['UsageError', 'NonFiniteLoss']


class UsageError(ValueError):
    """A bad command line, model, teacher or resume file: a one-line message.

    ``train_imagenet.py`` prints ``str(error)`` and exits with status 2, as
    argparse does for bad usage, before any training starts.
    """


class NonFiniteLoss(UsageError):
    """The loss became NaN or infinite: the hyper-parameters (``--lr`` first) make training
    diverge. The weights of that step are not saved; the newest checkpoint stays good."""
