"""Errors raised by the streaming reader.

Every message names the file and, where it applies, the line and the option a user can
change, so a failed ingest can be fixed without reading the source code.
"""


class ReaderError(Exception):
    """Base class: something about the input file or the reader options is wrong."""


class AccountingError(ReaderError):
    """Rows, rejected and skipped lines do not add up to the lines read. Never expected:
    the read stops rather than hand on rows that may be misplaced or missing."""


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
    """The share of rejected lines passed ``error_threshold``.

    Counted in physical lines (a rejected record that spans 40 lines counts 40), so a
    fault that swallows lines fails the threshold like any other."""

    def __init__(self, path, rejected_lines: int, lines_seen: int, threshold: float):
        self.path = str(path)
        self.rejects = rejected_lines
        self.rejected_lines = rejected_lines
        self.rows_seen = lines_seen
        self.lines_seen = lines_seen
        self.rate = rejected_lines / lines_seen if lines_seen else 0.0
        self.threshold = threshold
        self.rejects_file: str | None = None  # set by a caller that saved the rejects
        super().__init__(self._message())

    def _message(self) -> str:
        where = (
            f"the rejected lines (line, error_type, error, raw) are in {self.rejects_file}"
            if self.rejects_file
            else "the rejects table lists each rejected line with its reason"
        )
        return (
            f"{self.path}: {self.rejected_lines} of {self.lines_seen} data lines rejected ({self.rate:.2%}), "
            f"more than error_threshold={self.threshold} ({self.threshold:.2%}); {where}; "
            "fix the file or raise error_threshold"
        )

    def with_rejects_file(self, path) -> "RejectThresholdExceeded":
        """The same error, its message naming the file where the rejects were saved."""
        self.rejects_file = str(path)
        self.args = (self._message(),)
        return self
