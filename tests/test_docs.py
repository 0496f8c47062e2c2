"""README.md and docs/*.md: every code block runs, every link resolves, generated tables match.

Code blocks are fenced with an info string:

- ```python / ```bash: run, in order, page by page, in one fresh folder per page
  (``python`` is this interpreter, ``train_imagenet.py`` and ``eval.py`` are the
  repository's, ``$MXNET_HOME`` is the folder's own); a page's blocks may use the files
  of its earlier blocks, as a reader following it would.
- ```LANG no-test: REASON: not run (a GPU, a cluster, ImageNet, a download, or a command
  that runs the test suite itself); ``test_skipped_block`` reports it as skipped with
  REASON.
- ```LANG slow: run only with the slow tests (``-m slow``, ``make test-all``); its page's
  test is then a slow test.
- ```text: not code (a diagram, a listing, printed output).

A block without an info string, or of another language without ``no-test: REASON``,
fails ``test_every_block_is_run_or_skipped_with_a_reason``.
"""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ['README.md'] + sorted(os.path.relpath(p, ROOT)
                               for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
RUNNABLE = ('python', 'bash')
#: Pages other branches write (issue 22); links to them may dangle until they land.
PENDING_PAGES = set()
README_MAX_LINES = 150
FENCE = re.compile(r'^( *)```([^\n]*)\n(.*?)^\1```[ \t]*$', re.M | re.S)


class Block:
    def __init__(self, page, line, info, code):
        self.page, self.line, self.code = page, line, code
        words = info.strip().split(None, 1)
        self.lang = words[0] if words else ''
        option = words[1].strip() if len(words) > 1 else ''
        self.skip = None
        self.slow = option == 'slow'
        if option.startswith('no-test'):
            self.skip = option[len('no-test'):].lstrip(':').strip()
        self.option = option

    @property
    def runs(self):
        return self.lang in RUNNABLE and self.skip is None

    def __repr__(self):
        return '%s:%d' % (self.page, self.line)


def blocks(page):
    text = open(os.path.join(ROOT, page)).read()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match.group(1))
        code = '\n'.join(line[indent:] for line in match.group(3).splitlines()) + '\n'
        found.append(Block(page, text.count('\n', 0, match.start()) + 1, match.group(2), code))
    return found


ALL = [block for page in PAGES for block in blocks(page)]


def test_the_pages_are_there():
    for page in ('getting-started', 'fine-tuning', 'training', 'deployment', 'experiments',
                 'speed', 'reliability', 'glossary', 'ARCHITECTURE'):
        assert 'docs/%s.md' % page in PAGES


def test_every_block_is_run_or_skipped_with_a_reason():
    for block in ALL:
        assert block.lang, '%r: a code block needs an info string (```text if not code)' % block
        if block.lang == 'text':
            continue
        if block.lang in RUNNABLE and block.option in ('', 'slow'):
            continue
        assert block.skip, ('%r: ```%s %s: run it (python or bash) or say why not '
                            '(no-test: REASON)' % (block, block.lang, block.option))


def test_no_indented_code_blocks():
    """Indented (4-space) code blocks cannot be marked; every command is a fenced block."""
    for page in PAGES:
        text = FENCE.sub('', open(os.path.join(ROOT, page)).read())
        previous = ''
        for number, line in enumerate(text.splitlines(), 1):
            assert not (line.startswith('    ') and line.strip() and not previous.strip()
                        and not previous.lstrip().startswith(('-', '*', '|'))), \
                '%s: an indented code block near %r' % (page, line)
            previous = line


def test_readme_is_a_front_page():
    with open(os.path.join(ROOT, 'README.md')) as readme:
        lines = readme.read().splitlines()
    assert len(lines) <= README_MAX_LINES, len(lines)   # the generated blocks included


def _page_param(page):
    page_blocks = blocks(page)
    marks = [pytest.mark.slow] if any(b.slow and b.runs for b in page_blocks) else []
    return pytest.param(page, marks=marks, id=page)


def _environment(folder):
    bin_dir = os.path.join(folder, '.bin')
    os.makedirs(bin_dir)
    with open(os.path.join(bin_dir, 'python'), 'w') as wrapper:
        wrapper.write('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
    os.chmod(os.path.join(bin_dir, 'python'), 0o755)
    for script in glob.glob(os.path.join(ROOT, '*.py')):
        if os.path.basename(script) != 'setup.py':
            os.symlink(script, os.path.join(folder, os.path.basename(script)))
    return dict(os.environ, PYTHONPATH=ROOT, MXNET_HOME=os.path.join(folder, '.mxnet'),
                PATH=bin_dir + os.pathsep + os.environ.get('PATH', ''))


@pytest.mark.timeout(1200)
@pytest.mark.parametrize('page', [_page_param(page) for page in PAGES
                                  if any(b.runs for b in blocks(page))])
def test_page_code_runs(page, tmp_path):
    """Every runnable block of the page, in order, in one folder: as a reader runs them."""
    env = _environment(str(tmp_path))
    for block in blocks(page):
        if not block.runs:
            continue
        command = ([sys.executable, '-c', block.code] if block.lang == 'python'
                   else ['bash', '-eu', '-c', block.code])
        done = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, '%r failed:\n%s\n%s' % (block, done.stdout[-2000:],
                                                             done.stderr[-3000:])


@pytest.mark.parametrize('block', [b for b in ALL if b.skip], ids=repr)
def test_skipped_block(block):
    pytest.skip('%r not run: %s' % (block, block.skip))


# ---------------------------------------------------------------- links


LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)')


def _anchors(path):
    """GitHub's anchors of the headings of a markdown file."""
    text = FENCE.sub('', open(path).read())
    anchors = set()
    for heading in re.findall(r'^#+ +(.*?) *$', text, re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        anchors.add(slug)
    return anchors


def test_links_resolve():
    bad = []
    for page in PAGES:
        text = FENCE.sub('', open(os.path.join(ROOT, page)).read())
        text = re.sub(r'`[^`\n]*`', '', text)
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r'[a-z]+:', target):
                continue
            path, _, anchor = target.partition('#')
            full = (os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) if path
                    else os.path.join(ROOT, page))
            relative = os.path.relpath(full, ROOT)
            if not os.path.exists(full):
                if relative not in PENDING_PAGES:
                    bad.append('%s: %s (no such file)' % (page, target))
                continue
            if anchor and full.endswith('.md') and anchor not in _anchors(full):
                bad.append('%s: %s (no such heading)' % (page, target))
    assert not bad, bad


def test_every_page_is_linked_from_readme():
    text = open(os.path.join(ROOT, 'README.md')).read()
    for page in PAGES[1:] + sorted(PENDING_PAGES):
        assert '](%s)' % page in text, '%s is not linked from README.md' % page


# ---------------------------------------------------------------- generated tables


def test_readme_zoo_table_is_generated():
    from gluon_asymmnet.fileio import read_block
    from gluon_asymmnet.summary import ZOO_BLOCK, zoo_table
    assert read_block(os.path.join(ROOT, 'README.md'), ZOO_BLOCK) == zoo_table(), \
        'README.md: rerun python -m gluon_asymmnet.summary --zoo-table --update README.md'


def test_readme_results_are_the_committed_report():
    from gluon_asymmnet.fileio import read_block
    report = open(os.path.join(ROOT, 'docs', 'experiments', 'report.md')).read()
    report = report.replace('](top1_', '](docs/experiments/top1_')
    assert read_block(os.path.join(ROOT, 'README.md'), 'experiments') == report, \
        'README.md: rerun make experiments (it writes both)'


def test_zoo_table_update(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('a\n<!-- zoo:begin -->\nold\n<!-- zoo:end -->\nb\n')
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.summary', '--zoo-table',
                           '--update', str(page)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, MXNET_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert text.startswith('a\n<!-- zoo:begin -->\nMade by') and text.endswith(
        '| ghostnet_0.5 | 44.63M | 3,239,624 |  |\n<!-- zoo:end -->\nb\n')
    page.write_text('no markers\n')
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.summary', '--zoo-table',
                           '--update', str(page)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, MXNET_HOME=str(tmp_path)))
    assert done.returncode == 2 and 'zoo:begin' in done.stderr
    assert page.read_text() == 'no markers\n'
