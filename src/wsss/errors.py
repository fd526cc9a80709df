"""The project's error classes, at the bottom of the package (imports nothing from wsss).

Each message names the file, folder or key at fault and what to do. The command line (``wsss.cli``) shows
any of them as one ``wsss: error:`` line, without a traceback.
"""


class ConfigError(ValueError):
    """A configuration problem, naming the offending key."""


class DatasetError(ValueError):
    """A dataset on disk is missing or malformed; the message names the file and the problem."""


class DownloadError(RuntimeError):
    """A download failed, its checksum did not match, or its archive is unsafe."""


class OutputError(ValueError):
    """An output path that cannot be written without losing data, or that cannot be written at all."""


class TrackingError(ValueError):
    """The tracking store cannot be used; the message names it and how to run without it."""
