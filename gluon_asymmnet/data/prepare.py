"""Pack a class-folder image tree into RecordIO (``.lst/.rec/.idx``) with MXNet's ``im2rec.py``.

``IMAGE_DIR`` holds one sub-folder per class (sorted names are the class numbers,
as for ``ImageFolderDataset``). The work is done by the ``tools/im2rec.py`` that
ships inside the installed ``mxnet`` package, run twice (``--list --recursive``,
then packing) in a private temporary folder next to the output, whose results are
then renamed into place::

    python -m gluon_asymmnet.data.prepare ~/data/imagenet/train ~/data/rec/train \\
        --resize 256 --quality 95 --num-thread 16
    # -> ~/data/rec/train.lst train.rec train.idx
    python -m gluon_asymmnet.data.prepare IMAGES OUT --train-ratio 0.9
    # -> OUT_train.{lst,rec,idx} and OUT_val.{lst,rec,idx}

Beside them goes ``OUT.synset.txt`` (for both parts of a split): the class names
in label order, which training records so that evaluation and exports name the
classes.

An image that fails to decode stops the command with its name (im2rec itself
would skip or crash on it).
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from ..cli import MAX_DATA_WORKERS, MAX_INPUT_SIZE, OneLineParser, check_ranges, run
from ..errors import DataError
from ..fileio import publish
from .loaders import SYNSET_SUFFIX
from .records import check_record_file

__all__ = ['im2rec_script', 'prepare_records', 'main']

_IM2REC_COUNT = re.compile(r'^count: \d+\s*$')
_BAD_IMAGE = re.compile(r'(?:imread read blank \(None\) image for file|'
                        r'imread error trying to load file|pack_img error on file):\s*(.+?)\s*$')


def im2rec_script():
    """Path of the ``im2rec.py`` bundled with the installed MXNet.

    Raises
    ------
    DataError
        This MXNet install has no ``tools/im2rec.py``.
    """
    import mxnet
    script = os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'im2rec.py')
    if not os.path.isfile(script):
        raise DataError('%s: MXNet\'s im2rec.py is missing from this install' % script)
    return script


def _im2rec(arguments, echo):
    """Run im2rec.py; return the images it could not read."""
    command = [sys.executable, im2rec_script()] + arguments
    # a process group of its own: im2rec and its encoding processes end together
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1, start_new_session=True)
    bad, last = [], ''
    try:
        for line in process.stdout:
            if not _IM2REC_COUNT.match(line):   # its "count: 0" counts something else
                echo(line.rstrip('\n'))
            match = _BAD_IMAGE.search(line)
            if match:
                bad.append(match.group(1))
            last = line.strip() or last
    except BaseException:   # SIGINT/SIGTERM (KeyboardInterrupt): im2rec must not outlive it
        with contextlib.suppress(ProcessLookupError):   # unless all of it ended already
            os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        process.stdout.close()
        process.wait()
    if process.returncode != 0 and not bad:
        raise DataError('%s failed (exit %d): %s' % (os.path.basename(command[1]),
                                                      process.returncode, last))
    return bad


#: What im2rec packs.
_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def _check_image_tree(image_dir):
    if not os.path.isdir(image_dir):
        raise DataError('%s: image folder does not exist' % image_dir)
    top = [name for name in sorted(os.listdir(image_dir))
           if os.path.isfile(os.path.join(image_dir, name))
           and os.path.splitext(name)[1].lower() in _IMAGE_EXTENSIONS]
    if top:
        raise DataError('%s: has images at its top level (%s); put every image in a class '
                        'folder' % (image_dir, top[0]))
    classes = [name for name in sorted(os.listdir(image_dir))
               if os.path.isdir(os.path.join(image_dir, name))]
    if not classes:
        raise DataError('%s: has no class folders' % image_dir)
    for name in classes:   # im2rec numbers only the folders it finds images in
        if not any(os.path.splitext(f)[1].lower() in _IMAGE_EXTENSIONS
                   for _, _, files in os.walk(os.path.join(image_dir, name)) for f in files):
            raise DataError('%s: class folder %s has no images (im2rec would give the classes '
                            'after it the wrong labels); add images or remove it'
                            % (image_dir, name))
    return classes


def prepare_records(image_dir, out_prefix, resize=0, quality=95, num_thread=1, train_ratio=1.0,
                    echo=print):
    """Pack ``image_dir``'s class folders into RecordIO files with MXNet's ``im2rec.py``.

    Parameters
    ----------
    image_dir : str
        Folder with one sub-folder of ``.jpg/.jpeg/.png`` images per class.
    out_prefix : str
        Output path without extension (its folder is created if needed).
    resize : int
        Resize the shorter side to this many pixels (0: keep the size).
    quality : int
        JPEG quality (1-100).
    num_thread : int
        Encoding processes.
    train_ratio : float
        Fraction in ``(0, 1]`` for ``<out_prefix>_train``, the rest for
        ``<out_prefix>_val``; 1 writes ``<out_prefix>.*`` only.
    echo : callable
        Receives im2rec's output lines.

    Returns
    -------
    list of (str, str, int)
        ``(rec, idx, number of records)`` of each file written.

    Raises
    ------
    DataError
        Bad folder or options, an image that does not decode (named), or im2rec failing.
    """
    if not 0 < train_ratio <= 1:
        raise DataError('--train-ratio %g: must be in (0, 1]' % train_ratio)
    if not 1 <= quality <= 100:
        raise DataError('--quality %d: must be in 1..100' % quality)
    if resize < 0 or num_thread < 1:
        raise DataError('--resize must be >= 0 and --num-thread >= 1')
    image_dir = os.path.abspath(os.path.expanduser(image_dir))
    classes = _check_image_tree(image_dir)
    images = sum(os.path.splitext(f)[1].lower() in _IMAGE_EXTENSIONS
                 for _, _, files in os.walk(image_dir) for f in files)
    if train_ratio < 1 and int(images * train_ratio) < 1:   # as im2rec.py cuts the list
        raise DataError('%s: a training part of %g of its %d images holds none; raise the '
                        'ratio' % (image_dir, train_ratio, images))
    out_prefix = os.path.abspath(os.path.expanduser(out_prefix))
    out_dir, name = os.path.split(out_prefix)
    try:
        os.makedirs(out_dir, exist_ok=True)
        work = tempfile.mkdtemp(prefix='.%s-' % name, dir=out_dir)
    except OSError as error:
        raise DataError('%s: cannot write here (%s)' % (out_dir, error.strerror)) from None
    try:
        prefix = os.path.join(work, name)
        _im2rec(['--list', '--recursive', '--train-ratio', str(train_ratio), prefix, image_dir],
                echo)
        bad = _im2rec(['--resize', str(resize), '--quality', str(quality),
                       '--num-thread', str(num_thread), prefix, image_dir], echo)
        if bad:
            raise DataError('%s: image does not decode%s' % (
                bad[0], ' (and %d more)' % (len(bad) - 1) if len(bad) > 1 else ''))
        parts = [''] if train_ratio == 1 else ['_train', '_val']
        written, files = [], []
        for part in parts:
            rec, idx = prefix + part + '.rec', prefix + part + '.idx'
            if not os.path.isfile(rec):
                if part == '_val':    # too few images for a validation part
                    continue
                raise DataError('%s: im2rec wrote no records' % image_dir)
            with open(prefix + part + '.lst') as listing:
                listed = sum(1 for line in listing if line.strip())
            count = check_record_file(rec, idx)
            if count != listed:
                raise DataError('%s: im2rec packed %d of %d images' % (image_dir, count, listed))
            written.append((out_prefix + part + '.rec', out_prefix + part + '.idx', count))
            files += [part + extension for extension in ('.lst', '.rec', '.idx')]
        with open(prefix + SYNSET_SUFFIX, 'w') as names:   # class names, in label order
            names.writelines(name + '\n' for name in classes)
        files.append(SYNSET_SUFFIX)
        publish(prefix, out_prefix, files)   # all in place, or none (SIGINT, SIGTERM, a folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    echo('%d classes (%s ... %s)' % (len(classes), classes[0], classes[-1]))
    return written


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.data.prepare IMAGE_DIR OUT_PREFIX [options]``."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.data.prepare',
        description="Pack a class-folder image tree into .lst/.rec/.idx with MXNet's im2rec.py.")
    parser.add_argument('image_dir', help='folder with one sub-folder of images per class')
    parser.add_argument('out_prefix', help='output path without extension')
    parser.add_argument('--resize', type=int, default=0,
                        help='resize the shorter side to this (0: keep; ImageNet: 256)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality 1-100')
    parser.add_argument('--num-thread', type=int, default=1, help='encoding processes')
    parser.add_argument('--train-ratio', type=float, default=1.0,
                        help='fraction for OUT_train (the rest: OUT_val); 1: OUT only')
    parser.add_argument('-q', '--quiet', action='store_true', help="hide im2rec's output")
    args = parser.parse_args(argv)
    check_ranges(parser, args, (('resize', 0, 4 * MAX_INPUT_SIZE, True, True),
                                ('quality', 1, 100, True, True),
                                ('num_thread', 1, MAX_DATA_WORKERS, True, True),
                                ('train_ratio', 0, 1, False, True)))
    echo = (lambda line: None) if args.quiet else print
    written = run(parser, prepare_records, args.image_dir, args.out_prefix, args.resize,
                  args.quality, args.num_thread, args.train_ratio, echo)
    for rec, idx, count in written:
        print('%s %s: %d images' % (rec, idx, count))
    return 0


if __name__ == '__main__':
    sys.exit(main())
