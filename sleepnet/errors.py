"""The exceptions a user sees as one clear line, and the exit status each gives.

``sleepnet`` prints ``sleepnet: error: <message>`` for either and exits with the
class's ``exit_code``: 2 for a usage error (the command line itself: an unknown
option, a value an option refuses), 1 for the rest (a file, a data set, a model
folder or a record that cannot be used, an output path that cannot be written).
"""


class SleepnetError(Exception):
    """Bad input or an unusable file: the CLI prints ``sleepnet: error: <message>`` and exits 1."""

    exit_code = 1


class UsageError(SleepnetError):
    """A command line that cannot run as written (an option, a ``--set`` value): exit status 2."""

    exit_code = 2


class ConversionError(SleepnetError):
    """A torch model that cannot become a spiking network; the message names the layer."""
