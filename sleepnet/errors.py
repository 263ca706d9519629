"""The one exception type a user sees as a clear one-line message."""


class SleepnetError(Exception):
    """Bad input or an unusable file: the CLI prints ``sleepnet: error: <message>`` and exits 2."""


class ConversionError(SleepnetError):
    """A torch model that cannot become a spiking network; the message names the layer."""
