"""``python -m gluon_asymmnet.train``: ``train_imagenet.py`` from an installed package."""
import sys

from .main import main

sys.exit(main())
