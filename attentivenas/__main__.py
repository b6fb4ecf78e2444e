"""`python -m attentivenas COMMAND ...`: every stage of the pipeline as a command."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from pathlib import Path

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


def check_arguments(args: argparse.Namespace) -> None:
    """The flags every command shares: a thread count, and outputs that can be written where they point."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UserInputError(f"--threads {threads}: give the number of CPU threads to use, at least 1")
    for flag, want_dir in (("out_dir", True), ("out", False)):
        value = getattr(args, flag, None)
        if value is not None:
            _check_output(Path(value), "--" + flag.replace("_", "-"), want_dir)


def _check_output(path: Path, flag: str, want_dir: bool) -> None:
    if path.exists() and path.is_dir() != want_dir:
        raise UserInputError(f"{flag} {path} is an existing {'directory' if path.is_dir() else 'file'}; give "
                             f"{'a directory (created if missing)' if want_dir else 'a file path'}")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserInputError(f"{flag} {path}: {blocker} is a file, so nothing can be written below it")


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
        check_arguments(args)
        return args.handler(args) or 0
    except UserInputError as err:
        logger.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
