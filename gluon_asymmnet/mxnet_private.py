"""The private parts of MXNet 1.9 that the package uses: all of them, each with its reason.

``tests/test_mxnet_private.py`` fails, naming the part, when an MXNet version
changes one of them.
"""
__all__ = ['PRIVATE_PARTS', 'structured_params']

#: ``(class, attribute)`` of every private part used here.
PRIVATE_PARTS = (('mxnet.gluon.Block', '_collect_params_with_prefix'),)


def structured_params(block):
    """``{structured name: Parameter}`` of ``block``, the names of ``save_parameters``
    (``features.4.expand.conv.weight``).

    Private because MXNet 1.x gives these names only inside ``save_parameters``
    and ``load_parameters`` (``Block._collect_params_with_prefix``).
    """
    return block._collect_params_with_prefix()
