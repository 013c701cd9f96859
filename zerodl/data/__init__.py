"""Data for the pipeline: IDX files, the four sources and their download, normalise and split.

Imports only numpy and the standard library (plus zerodl.errors, zerodl.io and
zerodl.atomic, whose `replace_dir` installs a stage's folder of outputs).
"""
from ..atomic import replace_dir
from .files import content_sha256
from .idx import load_pair, read_idx, write_idx
from .prepare import prepare, stratified_split
from .sources import IDX_FILES, Fetched, fetch

__all__ = [
    "IDX_FILES", "Fetched", "content_sha256", "fetch", "load_pair", "prepare", "read_idx",
    "replace_dir", "stratified_split", "write_idx",
]
