"""Validators for the on-disk dataset formats the project reads (stdlib + numpy only).

Each raises :class:`DataFormatError` (a ``ValueError``) or :class:`MissingDataFileError`
(also a ``FileNotFoundError``) whose message starts with ``file:line`` where there is a line,
names the field, and says what was expected. The host adapters call them before the hosts'
own readers (see :mod:`mm_ext._compat.data_validation`), which then read valid data unchanged.
"""
from .errors import DataFormatError, MissingDataFileError
from .odgt import check_odgt_record, read_odgt
from .cifar import check_cifar_batch, check_cifar_folder
from .video_list import read_video_list
from .market import MARKET_PATTERN, check_market_dir, parse_market_name

__all__ = ['DataFormatError', 'MissingDataFileError', 'read_odgt', 'check_odgt_record', 'check_cifar_batch',
           'check_cifar_folder', 'read_video_list', 'MARKET_PATTERN', 'parse_market_name', 'check_market_dir']
