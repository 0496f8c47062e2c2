"""Every ``python`` snippet of README.md runs as written, each in a fresh interpreter."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPETS = re.findall(r'^```python\n(.*?)^```', open(os.path.join(ROOT, 'README.md')).read(),
                      re.M | re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize('snippet', SNIPPETS, ids=lambda s: s.strip().splitlines()[-1][:40])
def test_snippet_runs(snippet, tmp_path):
    done = subprocess.run([sys.executable, '-c', snippet], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, MXNET_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
