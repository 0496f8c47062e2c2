"""gluon-asymmnet: AsymmNet (CVPR Workshops 2021) for Apache MXNet/Gluon.

Importing the package registers every model in GluonCV's zoo as well, with the
detectors and pose models of :mod:`gluon_asymmnet.detectors`.
"""
# First, before MXNet loads: MXNet computes with every core unless the user chose
# (gluon_asymmnet.threads); then (seconds before MXNet is loaded) a command of the
# package (python -m gluon_asymmnet.X, asymmnet-*, eval.py, train_imagenet.py) hears
# SIGINT/SIGTERM from here on.
from .threads import use_all_cores

use_all_cores()
from .cli import hear_signals_from_start

hear_signals_from_start()
from .model_zoo import get_model, get_model_config, list_models
from .models.asymmnet import AsymmBottleneck, AsymmNet, get_asymm_net, get_asymmnet_cfgs
from .models.features import FeatureExtractor
from .models.ghostnet import GhostNet, get_ghostnet
from . import detectors   # registers the detectors in GluonCV's zoo

__version__ = '0.1.0'
__all__ = ['get_model', 'get_model_config', 'list_models', 'AsymmBottleneck', 'AsymmNet',
           'get_asymm_net', 'get_asymmnet_cfgs', 'FeatureExtractor', 'GhostNet', 'get_ghostnet',
           'detectors']
