"""How a training stops on its own: a diverged run."""

__all__ = ['NonFiniteLoss', 'EXIT_DIVERGED']

#: Exit status of ``train_imagenet.py`` when the loss became NaN or infinite
#: (2 is bad usage, 1 an unexpected failure).
EXIT_DIVERGED = 3


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the hyper-parameters (``--lr`` first) make training
    diverge. The weights of that step are not saved; the newest checkpoint stays good."""

    #: The command's exit status (:func:`gluon_asymmnet.cli.run`).
    exit_status = EXIT_DIVERGED
