"""The ``liverlvt`` command line: the only place of argparse, progress bars and print()."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
