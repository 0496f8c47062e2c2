"""Files that appear whole or not at all.

:func:`atomic_save` writes through a temporary file in the target's folder,
fsyncs it and renames it over the target: a reader sees the old file or the
complete new one, never a mix, whatever kills the writer.  Every result file of
the package (checkpoints, exports, ONNX files, JSON reports, plots) goes
through it. :func:`publish` moves several files into place as one step that
SIGINT and SIGTERM cannot cut short (the files of an export, of a RecordIO set).
"""
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile

import mxnet as mx

__all__ = ['atomic_save', 'atomic_link', 'atomic_write_json', 'writable_target', 'publish',
           'read_block', 'replace_block', 'exclusive_lock']


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(path, write):
    """Create ``path`` through ``write(temporary_path)``, then fsync and rename it into place.

    Readers see either the old file or the complete new one, never a partial one.

    Raises
    ------
    OSError
        ``cannot write PATH: reason`` (read-only folder, full disk, file size
        limit...); ``path`` is then as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
        os.fchmod(fd, 0o666 & ~_umask())   # mkstemp's 0600 is for temporaries, not results
        os.close(fd)
        write(tmp)
        with open(tmp, 'rb+') as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except (OSError, mx.base.MXNetError) as error:
        reason = (error.strerror or str(error) if isinstance(error, OSError)
                  else 'the write was incomplete (disk full or file size limit?)')
        raise OSError('cannot write %s: %s' % (path, reason)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def atomic_link(source, path):
    """Make ``path`` the same file as ``source`` (a hard link, else a copy), atomically."""
    def link(tmp):
        os.remove(tmp)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    atomic_save(path, link)


def atomic_write_json(obj, path, **dump_kwargs):
    """Write ``obj`` as JSON (indented) to ``path`` with :func:`atomic_save`."""
    def write(tmp):
        with open(tmp, 'w') as out:
            json.dump(obj, out, indent=1, **dump_kwargs)
    atomic_save(path, write)


def _block_markers(name):
    return '<!-- %s:begin -->' % name, '<!-- %s:end -->' % name


def read_block(path, name):
    """The text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``.

    Raises ``ValueError`` when the file lacks the markers (or has them out of order).
    """
    begin, end = _block_markers(name)
    with open(path) as source:
        content = source.read()
    if begin not in content or end not in content.split(begin, 1)[1]:
        raise ValueError('%s has no %s ... %s block' % (path, begin, end))
    return content.split(begin, 1)[1].split(end, 1)[0][1:]


def replace_block(path, name, text):
    """Put ``text`` between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``
    (atomically); a generated part of a hand-written page (README's zoo table and results).

    Raises ``ValueError`` when the file lacks the markers.
    """
    read_block(path, name)
    begin, end = _block_markers(name)
    with open(path) as source:
        content = source.read()
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    new = '%s%s\n%s%s%s' % (head, begin, text, end, tail)

    def write(tmp):
        with open(tmp, 'w') as out:
            out.write(new)
    atomic_save(path, write)


def writable_target(path):
    """Raise ``OSError`` unless ``path`` can be replaced by a regular file.

    A special file (``/dev/full``, a FIFO) or a folder is refused: renaming a
    new file over it would replace the device node or fail half-way.
    """
    if os.path.lexists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError('cannot write %s: not a regular file' % path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError('cannot write %s: no such folder %s' % (path, folder))
    if not os.access(folder, os.W_OK):
        raise OSError('cannot write %s: the folder is not writable' % path)


def publish(work, prefix, suffixes):
    """Move ``work + suffix`` to ``prefix + suffix`` for each suffix, in order (a file that
    tells readers the others are complete, such as an export's info, last).

    SIGINT and SIGTERM wait until every file is in place. Publishers of one
    folder publish one at a time (``flock`` on the folder), so two commands
    writing one prefix never interleave their files (a reader of an export checks
    them against its info: :func:`gluon_asymmnet.deploy.info.check_files`).

    Returns
    -------
    list of str
        The published paths.

    Raises
    ------
    OSError
        A target that cannot be replaced by a regular file (see :func:`writable_target`);
        nothing is moved then.
    """
    folder = os.path.dirname(os.path.abspath(prefix))
    for suffix in suffixes:
        writable_target(prefix + suffix)
    handle = os.open(folder, os.O_RDONLY)
    signals = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)   # Ctrl-C waits for the renames
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for suffix in suffixes:
            os.replace(work + suffix, prefix + suffix)
        os.fsync(handle)
    finally:
        os.close(handle)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return [prefix + suffix for suffix in suffixes]


def exclusive_lock(path):
    """An open handle of ``path`` (created if missing) holding an exclusive ``flock``, or
    None when another process holds it. The lock goes with the handle: closed, or its
    process ended, however it ends.
    """
    handle = open(path, 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
