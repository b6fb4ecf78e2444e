"""`python -m attentivenas COMMAND ...`: every stage of the pipeline as a command."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from attentivenas import cli
from attentivenas.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attentivenas", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"attentivenas.cli.{info.name}")
        command = commands.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
