"""``python -m gluon_asymmnet.experiments``."""
import sys

from .cli import main

sys.exit(main())
