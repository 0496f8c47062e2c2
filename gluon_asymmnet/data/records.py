"""Checking and reading RecordIO files (``.rec`` + ``.idx``) without decoding batches.

An image RecordIO file is a sequence of records, each ``magic, length`` (two
little-endian uint32, the top 3 bits of ``length`` a continuation flag), the
payload, padding to 4 bytes. The payload of an image record starts with MXNet's
``IRHeader`` (``flag, label, id, id2``) followed by the encoded image. The
``.idx`` file has one ``key<TAB>byte offset`` line per record.

These functions read only what they need, so they are cheap even on ImageNet's
files: :func:`record_labels` reads 32 bytes per record, :func:`check_record_file`
decodes a bounded, evenly spread sample.
"""
import os
import struct

import cv2
import numpy as np
from mxnet import recordio

from ..errors import DataError

__all__ = ['read_index', 'check_record_file', 'record_labels', 'count_classes',
           'sample_positions']

_MAGIC = 0xced7230a
_LENGTH_MASK = (1 << 29) - 1
_HEAD = struct.Struct('<II')
_IR_HEADER = struct.Struct('<IfQQ')


def _check_readable_file(path, what):
    if not path:
        raise DataError('%s is not given' % what)
    if not os.path.exists(path):
        raise DataError('%s: %s does not exist' % (path, what))
    if not os.path.isfile(path):
        raise DataError('%s: %s is not a file' % (path, what))
    if not os.access(path, os.R_OK):
        raise DataError('%s: %s is not readable' % (path, what))


def _cut_off(rec, key, offset):
    return DataError('%s: record %d at byte %d is cut off (truncated file)' % (rec, key, offset))


def _not_a_record(rec, key, offset):
    return DataError('%s: no record %d at byte %d (not a RecordIO file, or a wrong index)'
                     % (rec, key, offset))


def read_index(rec, idx):
    """The ``(key, offset)`` pairs of an index file, checked against its record file.

    Parameters
    ----------
    rec : str
        The ``.rec`` file.
    idx : str or None
        Its ``.idx`` file (``None`` or ``''``: an error, the iterators need it).

    Returns
    -------
    list of (int, int)
        Keys and byte offsets in file order.

    Raises
    ------
    DataError
        A file is missing or unreadable, the index is not ``key<TAB>offset``
        lines, is empty, or points past the end of the record file.
    """
    _check_readable_file(rec, 'record file')
    if not idx:
        raise DataError('%s: record file has no index file (.idx); make both with '
                        'python -m gluon_asymmnet.data.prepare' % rec)
    _check_readable_file(idx, 'index file')
    entries = []
    with open(idx, 'rb') as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = (int(field) for field in fields)
            except ValueError:
                raise DataError('%s: line %d is not "key<TAB>offset"' % (idx, number)) from None
            entries.append((key, offset))
    if not entries:
        raise DataError('%s: index file has no records' % idx)
    size = os.path.getsize(rec)
    for key, offset in entries:
        if offset < 0 or offset + _HEAD.size > size:
            raise DataError('%s: record %d at byte %d is past the end of %s (%d bytes); '
                            'the index does not belong to it or it is truncated'
                            % (idx, key, offset, rec, size))
    return entries


def _read_record(stream, rec, key, offset):
    """The payload of the record at ``offset`` (joining continued parts as dmlc does)."""
    stream.seek(offset)
    parts = []
    while True:
        head = stream.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise _cut_off(rec, key, offset)
        magic, length = _HEAD.unpack(head)
        if magic != _MAGIC:
            raise _not_a_record(rec, key, offset)
        flag, length = length >> 29, length & _LENGTH_MASK
        payload = stream.read(length)
        if len(payload) < length:
            raise _cut_off(rec, key, offset)
        parts.append(payload)
        stream.seek((4 - length % 4) % 4, os.SEEK_CUR)
        if flag in (0, 3):   # a whole record, or the last part of a continued one
            return struct.pack('<I', _MAGIC).join(parts)


def sample_positions(count, limit):
    """Positions of at most ``limit`` items spread evenly over ``count``, ends included."""
    if count <= limit:
        return range(count)
    return sorted(set(np.linspace(0, count - 1, limit).round().astype(int).tolist()))


def check_record_file(rec, idx, max_decode=1000):
    """Validate a RecordIO pair before training on it.

    Checks that both files exist and are readable, that every index entry lies
    inside the record file, that the last record is complete, and that up to
    ``max_decode`` records (all of them in small files; first, last and evenly
    spread ones otherwise) hold a decodable image.

    Parameters
    ----------
    rec, idx : str
        The ``.rec`` and ``.idx`` files.
    max_decode : int
        How many records at most to read and decode.

    Returns
    -------
    int
        The number of records.

    Raises
    ------
    DataError
        With a one-line message naming the file (and record) at fault.
    """
    entries = read_index(rec, idx)
    last = max(range(len(entries)), key=lambda i: entries[i][1])
    positions = sorted(set(sample_positions(len(entries), max_decode)) | {last})
    with open(rec, 'rb') as stream:
        for position in positions:
            key, offset = entries[position]
            payload = _read_record(stream, rec, key, offset)
            if len(payload) < _IR_HEADER.size:
                raise DataError('%s: record %d is too short to be an image record' % (rec, key))
            _, image = recordio.unpack(payload)
            decoded = cv2.imdecode(np.frombuffer(image, dtype=np.uint8), cv2.IMREAD_COLOR)
            if decoded is None:
                raise DataError('%s: record %d (byte %d) does not decode as an image'
                                % (rec, key, offset))
    return len(entries)


def record_labels(rec, idx):
    """The label of every record, read from the record headers only.

    Parameters
    ----------
    rec, idx : str
        The ``.rec`` and ``.idx`` files.

    Returns
    -------
    numpy.ndarray
        float32 labels in index order (the first label of multi-label records).

    Raises
    ------
    DataError
        Missing/unreadable files, a bad index, or a record header that is cut off
        or does not start with the RecordIO magic number.
    """
    entries = read_index(rec, idx)
    labels = np.empty(len(entries), dtype=np.float32)
    first_label = struct.Struct('<f')
    with open(rec, 'rb') as stream:
        for position, (key, offset) in enumerate(entries):
            stream.seek(offset)
            head = stream.read(_HEAD.size + _IR_HEADER.size + first_label.size)
            if len(head) < _HEAD.size + _IR_HEADER.size:
                raise _cut_off(rec, key, offset)
            magic, _ = _HEAD.unpack_from(head)
            if magic != _MAGIC:
                raise _not_a_record(rec, key, offset)
            flag, label, _, _ = _IR_HEADER.unpack_from(head, _HEAD.size)
            if flag > 0:
                if len(head) < _HEAD.size + _IR_HEADER.size + first_label.size:
                    raise _cut_off(rec, key, offset)
                label, = first_label.unpack_from(head, _HEAD.size + _IR_HEADER.size)
            labels[position] = label
    return labels


def count_classes(labels, source):
    """The number of classes that integer labels ``0..C-1`` imply (``max + 1``).

    Raises
    ------
    DataError
        A label is negative or not a whole number (``source`` names the file).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError('%s: no samples' % source)
    if (labels < 0).any() or (labels != np.round(labels)).any():
        bad = labels[(labels < 0) | (labels != np.round(labels))][0]
        raise DataError('%s: label %g is not a class number 0, 1, 2, ...' % (source, bad))
    return int(labels.max()) + 1
