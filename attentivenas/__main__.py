"""`python -m attentivenas COMMAND ...`: every stage of the pipeline as a command."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from attentivenas import __version__, cli
from attentivenas.errors import UserInputError

logger = logging.getLogger("attentivenas")
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def add_verbosity_arguments(parser: argparse.ArgumentParser, default: int | str = 0) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="also log debug messages")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="log only warnings and errors, and show no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attentivenas", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    add_verbosity_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"attentivenas.cli.{info.name}")
        command = commands.add_parser(info.name.replace("_", "-"), help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        add_verbosity_arguments(command, default=argparse.SUPPRESS)
        command.set_defaults(handler=module.run)
    return parser


def configure_logging(verbose: int, quiet: int) -> None:
    """Log the package's messages to the current stderr: INFO by default, DEBUG with -v, WARNING with -q."""
    for handler in [h for h in logger.handlers if getattr(h, "attentivenas_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.attentivenas_cli = True
    logger.addHandler(handler)
    level = verbose - quiet
    logger.setLevel(logging.DEBUG if level > 0 else logging.INFO if level == 0 else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return args.handler(args) or 0
    except UserInputError as err:
        logger.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
