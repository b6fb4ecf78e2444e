"""Subcommands of `python -m attentivenas`: one module each, with HELP, add_arguments(parser) and run(args).

Modules whose names start with an underscore are shared helpers, not commands.
"""
