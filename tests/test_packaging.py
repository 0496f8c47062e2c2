"""The package as a user installs it: ``pip install .`` (not editable), run from anywhere.

The slow test installs this working tree into a fresh virtual environment outside
the repository, without downloading anything: the new environment sees the
project's site-packages through a ``.pth`` line (a path line only: the ``.pth``
files there, among them an editable install of some other checkout, are not run,
so the new environment's own copy is the one imported), and ``pip install
--no-deps --no-build-isolation --no-index`` builds from a copy of the tree. The
commands then run from an empty folder, ``PYTHONPATH`` unset.
"""
import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = 'asymmnet_small_0.35'
SHORT_TRAINING = ['--dataset', 'digits', '--model', MODEL, '--num-epochs', '1',
                  '--num-training-samples', '64', '--input-size', '32', '-j', '1']


def _setup_keyword(name):
    with open(os.path.join(ROOT, 'setup.py')) as stream:
        tree = ast.parse(stream.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == name:
            return node.value
    raise AssertionError('setup.py has no %s' % name)


def test_python_requires_is_true_to_the_code():
    """Every module parses as the lowest Python that ``python_requires`` admits, and the
    standard-library calls that need newer ones are not used."""
    lowest = re.fullmatch(r'>=3\.(\d+)', ast.literal_eval(_setup_keyword('python_requires')))
    assert lowest, 'python_requires must be >=3.N'
    minor = int(lowest.group(1))
    assert minor >= 9    # os.waitstatus_to_exitcode (experiments runner)
    newer = {10: r'\bitertools\.pairwise\b|\bzip\([^)]*\bstrict=|kw_only=|slots=True|\bmatch \w+:',
             11: r'\btomllib\b|\bExceptionGroup\b|\bdatetime\.UTC\b|\bStrEnum\b'}
    sources = glob.glob(os.path.join(ROOT, 'gluon_asymmnet', '**', '*.py'), recursive=True)
    for path in sources + [os.path.join(ROOT, name) for name in ('train_imagenet.py', 'eval.py')]:
        with open(path) as stream:
            source = stream.read()
        ast.parse(source, path, feature_version=(3, minor))
        for version, pattern in newer.items():
            if version > minor:
                assert not re.search(pattern, source), (path, version)


def _copy_tree(destination):
    """The working tree's files that git would commit (tracked, or new and not ignored)."""
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source) and not os.path.islink(source):
            os.makedirs(os.path.dirname(os.path.join(destination, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(destination, name))


def _run(command, cwd, env, timeout=600):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


@pytest.mark.slow
def test_installed_package_runs_from_anywhere(tmp_path):
    pytest.importorskip('wheel', reason='building without isolation needs wheel '
                                        '(requirements-dev.txt; make venv installs it)')
    source, venv, work = tmp_path / 'src', tmp_path / 'venv', tmp_path / 'work'
    _copy_tree(str(source))
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    own = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                                        '["purelib"])'], capture_output=True, text=True,
                         check=True).stdout.strip()
    with open(os.path.join(own, 'project-site-packages.pth'), 'w') as pth:
        pth.write(sysconfig.get_paths()['purelib'] + '\n')
    env = {name: value for name, value in os.environ.items() if name != 'PYTHONPATH'}
    env['MXNET_HOME'] = str(tmp_path / 'mxnet_home')
    env['PIP_NO_INDEX'] = '1'                  # nothing may be downloaded
    os.makedirs(str(work))
    _run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation',
          '--no-index', str(source)], str(work), env)

    where = _run([python, '-c', 'import gluon_asymmnet; print(gluon_asymmnet.__file__)'],
                 str(work), env).strip()
    assert where == os.path.join(own, 'gluon_asymmnet', '__init__.py')
    scripts = venv / 'bin'

    listing = _run([str(scripts / 'asymmnet-experiments'), '--preset', 'digits', '--dry-run'],
                   str(work), env)
    assert '120 cells' in listing and 'to train' in listing

    helped = _run([str(scripts / 'asymmnet-train'), '--help'], str(work), env)
    assert helped.startswith('usage: ') and '(default: 32)' in helped

    _run([str(scripts / 'asymmnet-train')] + SHORT_TRAINING + ['--save-dir', 'runs'],
         str(work), env)
    run_dir = work / 'runs' / (MODEL + '-baseline')
    assert (run_dir / 'metrics.jsonl').is_file() and (run_dir / (MODEL + '-symbol.json')).is_file()

    # the runner starts the installed package's training, not a script of the repository
    _run([str(scripts / 'asymmnet-experiments'), '--models', MODEL, '--seeds', '1',
          '--latency-runs', '0', '--out', 'grid', '--', '--dataset', 'digits', '--num-epochs',
          '1', '--num-training-samples', '64', '--input-size', '32'], str(work), env)
    cell = work / 'grid' / 'runs' / (MODEL + '-r1-g0-seed0')
    assert (cell / (MODEL + '-symbol.json')).is_file()
    assert (work / 'grid' / 'report.md').is_file()
