"""The package version: read by `setup.py`, `runs` (recorded in run.json) and `tf_translate.__version__`."""

__version__ = "0.1.0"
