"""The base of every error caused by bad input; the command line prints these without a traceback."""


class UserInputError(ValueError):
    """Bad input (config, file, subnet, checkpoint): the message says what is wrong and how to fix it."""
