"""Error types of Symbolic DNN-Tuner.

Every error the tool raises on purpose derives from `TunerError`. The CLI prints a
`TunerError` as one line (`error: <message>`) and exits with status 2; anything else is
a bug and keeps its traceback. Wrap lower-level errors with `raise ... from err`.
"""


class TunerError(Exception):
    """Base class of every error raised on purpose by the tuner."""


class ConfigurationError(TunerError):
    """A user-supplied setting is wrong; raised before any training starts."""


class DatasetError(ConfigurationError):
    """A dataset name, file or folder cannot be used (message names the file and the fault)."""


class SearchSpaceError(ConfigurationError):
    """A search-space description is malformed (message names the offending entry)."""


class RulesError(ConfigurationError):
    """A ProbLog diagnosis or rules file is malformed (message names the file, quotes ProbLog)."""


class RunStateError(TunerError):
    """The log folder cannot hold, or does not hold, the run asked for."""


class TrainingError(TunerError):
    """One training failed; the trial is recorded as failed and the search goes on."""
