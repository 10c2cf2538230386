"""The one exception type that the CLI turns into a single line and exit code 2."""


class UserError(Exception):
    """A failure the user caused and can fix (bad name, bad option, missing key, ...).

    The message must say what is wrong and what to do, on one line.
    """
