"""The small JSON messages passed between the steps of a fan-out graph (plans, batches,
per-step results), for the cluster executors.

Each message is kept in the run's staging folder on the data root
(``layout.staging_dir(domain, run_id)/_steps``), so a step on another worker (another
machine, with its own empty working directory) can read what an earlier step wrote.
"""

import json

import dagster as dg

from assets_pkg import layout
from assets_pkg.io import atomic_write_json

MESSAGES = "_steps"  # the messages' folder in the run's staging folder


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


def step_messages_io_manager(domain: str) -> dg.IOManagerDefinition:
    """The IO manager of ``domain``'s fan-out step messages (bind it under a domain-specific
    key on the graph asset's ``resource_defs``)."""

    @dg.io_manager(description=f"The {domain} fan-out steps' messages, in the run's staging folder.")
    def _messages(_init_context) -> StepMessageIOManager:
        return StepMessageIOManager(domain)

    return _messages
