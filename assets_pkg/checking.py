"""Check outcomes as plain data, shared by Dagster asset checks and `assets-pkg check`.

A domain computes a :class:`CheckOutcome` in a pure function; its ``checks.py`` turns it
into a ``dg.AssetCheckResult`` (see :func:`assets_pkg.dagster_layer.check_result`), and its
``evaluate_materialized`` returns the same outcomes for the CLI, without materializing.
"""

from dataclasses import dataclass, field

ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class CheckOutcome:
    asset: str  # asset key path joined with "/", e.g. "splits/train"
    name: str
    passed: bool
    severity: str = ERROR
    description: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def blocking_failure(self) -> bool:
        return not self.passed and self.severity == ERROR

    def line(self) -> str:
        status = "PASS" if self.passed else ("FAIL" if self.severity == ERROR else "WARN")
        text = f"{status:4}  {self.asset}:{self.name}"
        return f"{text}  {self.description}" if self.description else text


def limited(ids, limit: int = 20) -> list:
    """The first offending ids for metadata (the UI shows them; the count says the rest)."""
    return [str(x) for x in list(ids)[:limit]]
