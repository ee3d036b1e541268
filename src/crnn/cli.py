"""The ``crnn`` command (floor 5): ``crnn demo``, ``crnn train-text``, ...

Each application module in `crnn.apps` adds its subcommand(s) with
``register(subparsers)``; a subcommand's handler takes the parsed arguments
and returns the exit status. This module only assembles the parser and
turns failures into exit statuses:

====  ==========================================================
0     success
2     a usage error (argparse) or a user error (`CLIError`:
      missing or unreadable file, bad value...), reported as
      ``crnn: error: <message>`` on stderr
130   interrupted (Ctrl-C)
====  ==========================================================

Run it as ``crnn ...`` (the console script) or ``python -m crnn ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional, Sequence

from .apps import bench, classify, forecast, tag, text, translate
from .apps.common import CLIError

__all__ = ["main", "build_parser"]

# The order of the commands in `crnn --help`.
_APPS = (text, forecast, classify, tag, translate, bench)

_EPILOG = """\
start with:  crnn demo
help on one command:  crnn COMMAND --help
"""


def _version() -> str:
    from . import __version__, build_info

    info = build_info()
    omp = f"OpenMP, {info['num_threads']} threads" if info["openmp"] else "no OpenMP"
    return (
        f"crnn {__version__} ({info['isa']} kernels, {omp}, {info['compiler']})\n{info['describe']}"
    )


class _VersionAction(argparse.Action):
    """--version, worked out only when asked for (it reads the installed
    distribution's metadata, which every other command can do without)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: Optional[str] = None,
    ) -> None:
        print(_version())  # on stdout, as argparse's own version action does
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options and every application's subcommands."""
    parser = argparse.ArgumentParser(
        prog="crnn",
        description="C-accelerated recurrent neural networks for NumPy: train, sample, "
        "forecast, classify, tag, translate and benchmark from the command line.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the version and the build, and exit"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for app in _APPS:
        app.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``crnn`` command with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args_list: List[str] = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except CLIError as exc:
        _flush_quietly()
        print(f"crnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _flush_quietly()
        print("\ncrnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`crnn sample ... | head`):
        # stop quietly, and keep Python from complaining at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
