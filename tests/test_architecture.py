"""The package's layers run one way (docs/ARCHITECTURE.md): no import cycle, and nothing
outside ``train/`` (and the modules whose job is to run trainings) reaches ``train/``.

Imports are read from the source, those inside functions included, so a lazy
import cannot hide an arrow that runs backwards.
"""
import ast
import os
import subprocess
import sys

import gluon_asymmnet

PACKAGE_DIR = os.path.dirname(gluon_asymmnet.__file__)
#: Modules (and packages, with their modules) whose job is to run trainings: they may use
#: ``train/``.
RUNS_TRAININGS = ('gluon_asymmnet.launch', 'gluon_asymmnet.experiments')


def _modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].split(os.sep)
                is_package = parts[-1] == '__init__'
                found['.'.join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imports(module, path, is_package, known):
    """The package modules that ``module`` imports anywhere in its source."""
    package = module.split('.') if is_package else module.split('.')[:-1]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level
                    else []) + ([node.module] if node.module else [])
            base = '.'.join(base)
            names = ['%s.%s' % (base, alias.name) for alias in node.names]
            if not all(name in known for name in names):   # names defined in ``base``
                names.append(base)
        else:
            continue
        targets.update(name for name in names if name in known and name != module)
    return targets


def _graph():
    known = _modules()
    return {module: _imports(module, path, is_package, known)
            for module, (path, is_package) in known.items()}


def _reaches(graph, start):
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _runs_trainings(module):
    return any(module == name or module.startswith(name + '.') for name in RUNS_TRAININGS)


def _is_training(module):
    return module == 'gluon_asymmnet.train' or module.startswith('gluon_asymmnet.train.')


def test_the_graph_sees_lazy_imports():
    graph = _graph()
    assert 'gluon_asymmnet.speed' in graph['gluon_asymmnet.evaluate']
    assert 'gluon_asymmnet.deploy.sources' in graph['gluon_asymmnet.train.main']


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ importing its own modules is how packages work, not a cycle
    for module, targets in graph.items():
        cycle = [t for t in targets if module in _reaches(graph, t)
                 and not (t.startswith(module + '.') or module.startswith(t + '.'))]
        assert not cycle, '%s and %s import each other (through %s)' % (
            module, cycle[0], ' -> '.join(sorted(_reaches(graph, cycle[0]))[:5]))


def test_nothing_below_train_imports_train():
    graph = _graph()
    for module in graph:
        if _is_training(module) or _runs_trainings(module) or module == 'gluon_asymmnet':
            continue
        reached = sorted(t for t in _reaches(graph, module) if _is_training(t))
        assert not reached, '%s reaches %s' % (module, reached[0])


def test_fresh_interpreter_loads_no_training_code():
    modules = sorted(m for m in _graph() if not _is_training(m) and not _runs_trainings(m))
    code = ('import importlib, sys\n'
            'for name in %r:\n'
            '    importlib.import_module(name)\n'
            'print(sorted(m for m in sys.modules if m.startswith("gluon_asymmnet.train")))'
            % modules)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == '[]'
