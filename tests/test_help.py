"""Every command's ``--help`` has a line for each flag and shows its default."""
import re
import subprocess
import sys

import pytest

from gluon_asymmnet.evaluate import build_parser as eval_parser
from gluon_asymmnet.export import build_parser as export_parser
from gluon_asymmnet.train.args import build_parser as train_parser

COMMANDS = ['summary', 'plot', 'convert', 'launch', 'quantize', 'export', 'data.prepare',
            'experiments', 'evaluate', 'train']


@pytest.mark.parametrize('build', [train_parser, eval_parser, export_parser])
def test_every_flag_has_help(build):
    parser = build()
    bare = [action.option_strings for action in parser._actions
            if action.option_strings and not action.help]
    assert not bare, bare


def test_defaults_are_shown():
    text = train_parser().format_help()
    for flag, default in (('--batch-size', '32'), ('--num-epochs', '120'), ('--lr', '0.1'),
                          ('--lr-mode', 'step'), ('--optimizer', 'nag')):
        block = re.search(r'^  %s .*?(?=^  -)' % re.escape(flag), text, re.M | re.S).group(0)
        assert '(default: %s)' % default in block, block


@pytest.mark.slow
@pytest.mark.parametrize('command', COMMANDS)
def test_help_of_every_entry_point_shows_defaults(command):
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.' + command, '--help'],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '(default: ' in done.stdout
