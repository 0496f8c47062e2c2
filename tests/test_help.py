"""Every command's ``--help`` has a line for each flag and shows its default.

The commands are found, not listed: every console script of ``setup.py`` and
every ``python -m`` entry point of the package (a module that runs ``main()``
under ``if __name__ == '__main__'``, a package with a ``__main__.py``).
"""
import argparse
import ast
import importlib
import os
import re
import subprocess
import sys

import pytest

from gluon_asymmnet.train.args import build_parser as train_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'gluon_asymmnet')


def console_scripts():
    """``{script: 'module:function'}`` of setup.py's ``entry_points``."""
    with open(os.path.join(ROOT, 'setup.py')) as stream:
        tree = ast.parse(stream.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'entry_points':
            scripts = ast.literal_eval(node.value)['console_scripts']
            return dict(line.replace(' ', '').split('=') for line in scripts)
    raise AssertionError('setup.py has no entry_points')


def module_entry_points():
    """``{'python -m' module: 'module:function'}`` of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(folder, name)
            module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
            if name == '__main__.py':
                package = module.rsplit('.', 1)[0]
                with open(path) as stream:
                    source = stream.read()
                origin = re.search(r'^from \.(\w+) import main$', source, re.M)
                assert origin, path
                found[package] = '%s.%s:main' % (package, origin.group(1))
            elif name.endswith('.py'):
                with open(path) as stream:
                    source = stream.read()
                if re.search(r"^if __name__ == '__main__':\n    sys\.exit\(main\(\)\)", source,
                             re.M):
                    found[module] = module + ':main'
    return found


def _function(target):
    module, function = target.split(':')
    return getattr(importlib.import_module(module), function)


def entry_points():
    """Every command, each once: ``{'module:function' where it is defined: [its names]}``."""
    targets = {}
    for name, target in list(console_scripts().items()) + list(module_entry_points().items()):
        function = _function(target)
        targets.setdefault('%s:%s' % (function.__module__, function.__qualname__), []).append(name)
    return targets


class _Parser(Exception):
    """Carries the parser that printed ``--help``."""


def parser_of(target, monkeypatch):
    """The ``argparse`` parser of a command's ``main``, from its own ``--help``."""
    main = _function(target)

    def caught(parser, file=None):
        raise _Parser(parser)
    monkeypatch.setattr(argparse.ArgumentParser, 'print_help', caught)
    with pytest.raises(_Parser) as printed:
        main(['--help'])
    return printed.value.args[0]


def test_entry_points_are_found():
    targets = entry_points()
    names = {name for names in targets.values() for name in names}
    assert {'asymmnet-train', 'asymmnet-experiments', 'gluon_asymmnet.train',
            'gluon_asymmnet.experiments', 'gluon_asymmnet.plot'} <= names
    assert sorted(targets['gluon_asymmnet.train.main:main']) == ['asymmnet-train',
                                                                 'gluon_asymmnet.train']
    assert len(targets) >= 12


@pytest.mark.parametrize('target', sorted(entry_points()))
def test_every_flag_has_help_and_shows_its_default(target, monkeypatch):
    parser = parser_of(target, monkeypatch)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        name = '/'.join(action.option_strings) or action.dest
        assert action.help, '%s: %s has no help' % (target, name)
        shown = formatter._expand_help(action)
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert 'default' in shown, '%s: %s hides its default %r' % (target, name,
                                                                        action.default)
        if isinstance(action, argparse._StoreFalseAction):   # a --no-X flag is off by default
            assert '(default: True)' not in shown, '%s: %s' % (target, name)


def test_defaults_are_shown():
    text = train_parser().format_help()
    for flag, default in (('--batch-size', '32'), ('--num-epochs', '120'), ('--lr', '0.1'),
                          ('--lr-mode', 'step'), ('--optimizer', 'nag')):
        block = re.search(r'^  %s .*?(?=^  -)' % re.escape(flag), text, re.M | re.S).group(0)
        assert '(default: %s)' % default in block, block


@pytest.mark.slow
@pytest.mark.parametrize('module', sorted(module_entry_points()))
def test_help_of_every_module_entry_point_runs(module):
    done = subprocess.run([sys.executable, '-m', module, '--help'], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: ') and '(default: ' in done.stdout
