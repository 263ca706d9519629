"""The exceptions a user sees as one clear line, and the exit status each gives.

``sleepnet`` prints ``sleepnet: error: <message>`` for either and exits with the
class's ``exit_code``: 2 for a usage error (the command line itself: an unknown
option, a value an option refuses, a name no registry knows), 1 for the rest (what
the command line points to: a file, a data set, a model folder, a record, a config
or experiment file that cannot be used, an output path that cannot be written, a
database that cannot be reached).
"""


class SleepnetError(Exception):
    """Bad input or an unusable file: the CLI prints ``sleepnet: error: <message>`` and exits 1."""

    exit_code = 1


class UsageError(SleepnetError):
    """A command line that cannot run as written (an option, a ``--set`` value): exit status 2."""

    exit_code = 2


def usage():
    """A context in which a ``SleepnetError`` becomes a ``UsageError``: around the checks of option
    values made deep in a command (``--saturation -1``, ``--noise poisson``), so that they exit 2."""
    import contextlib

    @contextlib.contextmanager
    def _usage():
        try:
            yield
        except UsageError:
            raise
        except SleepnetError as exc:
            raise UsageError(str(exc)) from None

    return _usage()


class ConversionError(SleepnetError):
    """A torch model that cannot become a spiking network; the message names the layer."""
