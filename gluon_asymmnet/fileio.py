"""Files that appear whole or not at all.

:func:`atomic_save` writes through a temporary file in the target's folder,
fsyncs it and renames it over the target: a reader sees the old file or the
complete new one, never a mix, whatever kills the writer.  Every result file of
the package (checkpoints, exports, ONNX files, JSON reports, plots) goes
through it.
"""
import json
import os
import shutil
import stat
import tempfile

import mxnet as mx

__all__ = ['atomic_save', 'atomic_link', 'atomic_write_json', 'writable_target']


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
