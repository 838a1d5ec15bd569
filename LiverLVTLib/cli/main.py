"""``liverlvt`` command line: one subcommand per pipeline stage.

Each subcommand is a module of this package (``cli/<command>.py``) exposing
``add_arguments(parser)`` and ``run(args) -> int``; it turns the arguments into the engine's
options, calls the engine and prints. The engine never sees argparse. Bad input ends with exit code 2 and one line
``liverlvt: error: <problem>. Fix: <fix>`` (no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .. import __version__
from ..core.errors import Cancelled, LiverLVTError

# subcommand -> (module, one-line help)
COMMANDS = {
    "segment": ("segment", "segment a CT into liver/vessel/tumor labels (then analyze them)"),
    "demo": ("demo", "run the whole pipeline on the built-in phantom CT"),
    "analyze": ("analyze", "measure lesions, vessel contact, volumes and stage from CT + labels"),
    "train": ("train", "train the liver/vessel/tumor network on a data manifest"),
    "evaluate": ("evaluate", "score predicted labels against reference labels"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liverlvt", description="LiverLVT: liver, hepatic vessel and tumor segmentation, "
        "measurement and staging from abdominal CT.")
    parser.add_argument("--version", action="version", version=f"liverlvt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        command = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text))
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except Cancelled as exc:  # a results run's own words on what was (not) written
        print(f"liverlvt: {exc}", file=sys.stderr)
        return exc.exit_code
    except LiverLVTError as exc:
        print(f"liverlvt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("liverlvt: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
