"""The command line's two kinds of failure, kept apart from argparse so every command module can raise them."""


class UsageError(Exception):
    """Bad usage: reported on one line with exit status 2."""


class RunError(Exception):
    """A failure while running: reported on one line with exit status 1."""
