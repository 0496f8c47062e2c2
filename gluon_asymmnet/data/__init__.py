"""Data for training and evaluation: RecordIO and image-folder pipelines, the digits demo set.

``gluon_asymmnet.errors.DataError`` is raised for every bad data input; ``digits.prepare_digits``
builds the embedded demo data set; ``loaders`` makes the iterators and the single
``batches`` loop; ``records`` checks and reads RecordIO files; ``prepare`` packs an
image folder into RecordIO with MXNet's ``im2rec.py``.
"""
from .digits import DigitsData, default_digits_root, prepare_digits
from ..errors import DataError
from .loaders import (SYNSET_SUFFIX, DataInfo, DataSource, batches, check_data, check_image_folder,
                      check_val_folder, image_folder_loaders, imagenet_rec_iters, record_synset,
                      val_folder_loader)
from .records import check_record_file, record_labels

__all__ = ['DataError', 'DigitsData', 'default_digits_root', 'prepare_digits', 'DataInfo',
           'batches', 'check_data', 'check_image_folder', 'image_folder_loaders', 'DataSource',
           'record_synset', 'SYNSET_SUFFIX', 'check_val_folder', 'val_folder_loader',
           'imagenet_rec_iters', 'check_record_file',
           'record_labels']
