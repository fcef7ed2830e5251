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
    # a check declared per partition: each partition's own outcome by its key (this outcome
    # is the run's aggregate); empty for a check of the whole run
    by_partition: dict = field(default_factory=dict, compare=False)

    @property
    def blocking_failure(self) -> bool:
        return not self.passed and self.severity == ERROR

    def line(self) -> str:
        status = "PASS" if self.passed else ("FAIL" if self.severity == ERROR else "WARN")
        text = f"{status:4}  {self.asset}:{self.name}"
        return f"{text}  {self.description}" if self.description else text


def outcome_to_dict(outcome: CheckOutcome) -> dict:
    """A JSON-serialisable outcome (its partitions' outcomes too): a step of a fan-out
    graph hands the checks it computed to the step that reports them."""
    return {"asset": outcome.asset, "name": outcome.name, "passed": outcome.passed, "severity": outcome.severity,
            "description": outcome.description, "metadata": outcome.metadata,
            "by_partition": {k: outcome_to_dict(v) for k, v in outcome.by_partition.items()}}


def outcome_from_dict(data: dict) -> CheckOutcome:
    return CheckOutcome(**{**data, "by_partition": {k: outcome_from_dict(v) for k, v in data["by_partition"].items()}})


def limited(ids, limit: int = 20) -> list:
    """The first offending ids for metadata (the UI shows them; the count says the rest)."""
    return [str(x) for x in list(ids)[:limit]]


STORAGE = "storage"


def stored_folder_outcomes(root, folders=()) -> list[CheckOutcome]:
    """The commit rules of an object-store data root, for `assets-pkg check` (DESIGN section 8).

    Every committed folder under ``root`` (found by its commit object) and every folder in
    ``folders`` (a domain's multi-object folders, with or without a commit): a part its
    commit lists that is missing or of another size is an ERROR naming the object; objects no
    commit lists, older than the grace (``ASSETS_PKG_UNCOMMITTED_GRACE_S``), are a WARN
    naming them (a killed writer's upload: the next writer of that folder deletes them).
    Nothing for a local root, where a folder is published by one rename."""
    from assets_pkg.storage import is_remote
    from assets_pkg.storage import objects

    if not is_remote(root):
        return []
    fs = root.fs
    prefix = root.path.rstrip("/") + "/"
    fs.invalidate_cache(root.path)
    try:
        keys = fs.find(prefix, withdirs=False)
    except FileNotFoundError:
        keys = []
    suffix = "/" + objects.COMMIT_NAME
    committed = {key[len(prefix):-len(suffix)] for key in keys if key.endswith(suffix) and key.startswith(prefix)}
    named = {str(folder): folder for folder in folders}
    for relative in committed:
        named.setdefault(str(root / relative), root / relative)
    outcomes: list[CheckOutcome] = []
    broken = 0
    grace = objects.uncommitted_grace_s()
    for text in sorted(named):
        folder = named[text]
        try:
            problems = objects.verify_commit(folder)
        except objects.CorruptCommit as exc:
            problems = [str(exc)]
        if problems:
            broken += 1
            outcomes.append(CheckOutcome(STORAGE, "commit_matches_parts", False, ERROR,
                                         f"{problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
                                         + "; re-materialize that partition",
                                         {"folder": text, "problems": limited(problems, 5)}))
        leftovers = objects.uncommitted_objects(folder, older_than_s=grace)
        if leftovers:
            outcomes.append(CheckOutcome(STORAGE, "no_uncommitted_objects", False, WARN,
                                         f"{len(leftovers)} object(s) under {text} that no commit lists, older than "
                                         f"{grace:g} s: {', '.join(leftovers[:5])} (a killed writer's upload; the next "
                                         f"writer of that folder deletes them)",
                                         {"folder": text, "objects": limited(leftovers)}))
    if not broken:
        outcomes.append(CheckOutcome(STORAGE, "commit_matches_parts", True, ERROR,
                                     f"{len(committed)} committed folder(s) under {root}, every part as committed"))
    return outcomes
