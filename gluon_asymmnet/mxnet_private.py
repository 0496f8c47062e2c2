"""The private parts of MXNet 1.9 that the package uses: all of them, each with its reason.

``tests/test_mxnet_private.py`` fails, naming the part, when an MXNet version
changes one of them.
"""
__all__ = ['PRIVATE_PARTS', 'structured_params', 'trainer_optimizer', 'trainer_updaters',
           'trainer_kvstore', 'init_trainer_now']

#: ``(class, attribute)`` of every private part used here.
PRIVATE_PARTS = (('mxnet.gluon.Block', '_collect_params_with_prefix'),
                 ('mxnet.gluon.Trainer', '_init_kvstore'), ('mxnet.gluon.Trainer', '_init_params'))


def structured_params(block):
    """``{structured name: Parameter}`` of ``block``, the names of ``save_parameters``
    (``features.4.expand.conv.weight``).

    Private because MXNet 1.x gives these names only inside ``save_parameters``
    and ``load_parameters`` (``Block._collect_params_with_prefix``).
    """
    return block._collect_params_with_prefix()


def trainer_optimizer(trainer):
    """The optimizer a ``gluon.Trainer`` updates with (after ``load_states``, the one the
    states file brought back). Private because ``Trainer`` exposes only its learning rate."""
    return trainer._optimizer


def trainer_kvstore(trainer):
    """``(whether trainer updates the weights inside its kvstore, the kvstore or None)``:
    private because ``Trainer`` says neither (MXNet decides both at the first step)."""
    return bool(trainer._update_on_kvstore), getattr(trainer, '_kvstore', None)


def trainer_updaters(trainer):
    """``[(updater, device index)]`` holding ``trainer``'s optimizer states, and the
    parameters they are indexed by: ``(updaters, params)``. Private because ``Trainer``
    gives its states only as a file (``save_states``), and a resume in another dtype must
    add or drop the float32 master weights in them."""
    if trainer._update_on_kvstore:
        updaters = [(trainer._kvstore._updater, 0)]
    else:
        updaters = [(updater, device) for device, updater in enumerate(trainer._updaters)]
    return updaters, trainer._params


def init_trainer_now(trainer):
    """Initialise ``trainer``'s kvstore and pull its parameters now instead of inside the
    first ``step`` (where a distributed worker's pull races with its push). Private because
    ``Trainer`` does this only lazily (``_init_kvstore``, ``_init_params``)."""
    trainer._init_kvstore()
    trainer._init_params()
