"""The version of shakegen: one place, read by the package, the run folders and the exports."""

__version__ = "0.1.0"
