"""Errors raised by the streaming reader.

Every message names the file and, where it applies, the line and the option a user can
change, so a failed ingest can be fixed without reading the source code.
"""


class ReaderError(Exception):
    """Base class: something about the input file or the reader options is wrong."""


class ReaderOptionError(ReaderError, ValueError):
    """An invalid option value; the message names the parameter."""

    def __init__(self, parameter: str, message: str):
        self.parameter = parameter
        super().__init__(f"invalid {parameter}: {message}")


class RejectedRowError(ReaderError):
    """A bad row while ``continue_on_error=False``."""

    def __init__(self, path, line: int, error_type: str, error: str):
        self.path = str(path)
        self.line = line
        self.error_type = error_type
        super().__init__(
            f"{path}: line {line}: {error_type}: {error} "
            "(continue_on_error=False stops at the first bad row; set continue_on_error=True "
            "to collect bad rows in reader.rejects instead)"
        )


class RejectThresholdExceeded(ReaderError):
    """The share of rejected rows passed ``error_threshold``."""

    def __init__(self, path, rejects: int, rows_seen: int, threshold: float):
        self.path = str(path)
        self.rejects = rejects
        self.rows_seen = rows_seen
        self.rate = rejects / rows_seen if rows_seen else 0.0
        self.threshold = threshold
        super().__init__(
            f"{path}: {rejects} of {rows_seen} rows rejected ({self.rate:.2%}), more than "
            f"error_threshold={threshold} ({threshold:.2%}); see reader.rejects for lines and "
            "reasons, fix the file or raise error_threshold"
        )
