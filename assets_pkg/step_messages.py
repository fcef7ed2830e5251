"""The small JSON messages passed between the steps of a fan-out graph (plans, batches,
per-step results), for the cluster executors.

Each message is kept in the run's staging folder on the data root
(``layout.staging_dir(domain, run_id)/_steps``), so a step on another worker (another
machine, with its own empty working directory) can read what an earlier step wrote.
"""

import functools
import json
import warnings

import dagster as dg

from assets_pkg import layout
from assets_pkg.io import atomic_write_json
from assets_pkg.storage.objects import list_files, remove_files
from assets_pkg.storage.root import is_remote

MESSAGES = "_steps"  # the messages' folder in the run's staging folder

# every fan-out graph binds this IO manager through resource_defs on a graph asset, which
# is beta: its notice is noise here
warnings.filterwarnings("ignore", message=".*resource_defs.*", category=dg.BetaWarning)


class StepMessageIOManager(dg.IOManager):
    """JSON-serialisable step outputs of one domain's fan-out graph, one file per output."""

    def __init__(self, domain: str):
        self.domain = domain

    def _path(self, context):
        run_id, *rest = context.get_identifier()
        return layout.staging_dir(self.domain, run_id) / MESSAGES / f"{'.'.join(rest)}.json"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        atomic_write_json(self._path(context), obj)

    def load_input(self, context: dg.InputContext):
        return json.loads(self._path(context.upstream_output).read_text(encoding="utf-8"))


@functools.cache
def step_messages_io_manager(domain: str) -> dg.IOManagerDefinition:
    """The IO manager of ``domain``'s fan-out step messages (bind it under a domain-specific
    key on the graph asset's ``resource_defs``). One definition per domain: the graph assets
    of a domain bind the same object under the same key, which Definitions accepts."""

    @dg.io_manager(description=f"The {domain} fan-out steps' messages, in the run's staging folder.")
    def _messages(_init_context) -> StepMessageIOManager:
        return StepMessageIOManager(domain)

    return _messages


def remove_messages(domain: str, run_id: str, prefix: str = "") -> None:
    """The messages of one graph of the run (file names starting ``<prefix>.``; no prefix:
    all of the run's), read by now; another graph of the same run keeps its own. Empty
    folders left are removed."""
    run_folder = layout.staging_dir(domain, run_id)
    start = f"{prefix}." if prefix else ""
    remove_files([p for p in list_files(run_folder / MESSAGES) if p.name.startswith(start)])
    if not is_remote(run_folder):  # an object store has no empty folders to leave behind
        for folder in (run_folder / MESSAGES, run_folder, run_folder.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty (another graph's messages) or gone
                break


def remove_ended_runs_messages(domain: str, instance: dg.DagsterInstance) -> list[str]:
    """The messages that runs of ``domain`` left behind when they ended without their finish
    step (a failed step, a killed worker), removed; returns those runs' ids. A run still
    queued or running keeps its messages. Only for a domain whose staging holds nothing but
    step messages (the summary's staging has its own cleanup)."""
    removed = []
    for folder in list_files(layout.staging_dir(domain, None), folders=True):
        run = instance.get_run_by_id(folder.name)
        # a run this instance does not know cannot be running against its data root
        if run is None or run.is_finished:
            remove_messages(domain, folder.name)
            removed.append(folder.name)
    return removed
