"""``.. crnn-help:: [COMMAND]``: the help text of the ``crnn`` command (or of
one of its subcommands), as ``crnn [COMMAND] --help`` prints it, generated
from crnn.cli's parser at build time so the page cannot go stale."""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HELP_WIDTH = "88"


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise ValueError(f"crnn has no command {command!r}")


def command_help(command: str = "") -> str:
    """What ``crnn [command] --help`` prints, at a fixed width."""
    from crnn.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH  # argparse wraps to $COLUMNS
    try:
        parser = build_parser()
        if command:
            parser = _subparser(parser, command)
        return parser.format_help().rstrip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


class CrnnHelp(SphinxDirective):
    optional_arguments = 1
    has_content = False

    def run(self) -> List[nodes.Node]:
        command = self.arguments[0] if self.arguments else ""
        try:
            text = command_help(command)
        except ValueError as exc:
            raise self.error(str(exc)) from exc
        prompt = f"$ crnn {command + ' ' if command else ''}--help\n"
        block = nodes.literal_block(prompt + text, prompt + text)
        block["language"] = "text"
        return [block]


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("crnn-help", CrnnHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
