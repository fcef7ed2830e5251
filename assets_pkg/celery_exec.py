"""The Celery side of the cluster profile: dagster-celery's executor with a queue per domain,
and the worker (``assets-pkg worker``). Imported only when ``ASSETS_PKG_EXECUTOR=celery`` or a
worker starts, so the embedded profile never loads Celery.

Retry policy: none. A step whose worker process dies (SIGKILL, OOM) fails with Celery's
``WorkerLostError``, its run fails, and nothing it was writing is published (every write is
a temp file renamed into place); re-running the run recomputes exactly those partitions.
"""

import dagster as dg
from dagster._core.execution.plan.step import ExecutionStep
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

from assets_pkg.cluster import CODE_LOCATION_MODULE
from assets_pkg.domains import DOMAINS
from assets_pkg.settings import CELERY_BROKER_VAR, celery_backend_url, celery_broker_url

DEFAULT_QUEUE = "dagster"  # dagster-celery's own queue: steps of no domain
ALL_QUEUES = (*DOMAINS, DEFAULT_QUEUE)
# Celery settings shared by the orchestrating process and the workers. One task at a time
# per worker process, acknowledged when it starts (Celery's default): a worker process that
# dies mid-step gets its task failed (WorkerLostError), never silently re-run elsewhere.
CELERY_APP_CONFIG = {
    "worker_prefetch_multiplier": 1,
    "task_acks_late": False,
    "broker_connection_retry_on_startup": True,
    "result_expires": 24 * 3600,
}


def step_domain(step) -> str | None:
    """The domain (asset key prefix) of the first asset or check a step outputs."""
    for output in step.step_outputs:
        props = output.properties
        key = props.asset_key if props is not None else None
        if key is None and props is not None and props.asset_check_key is not None:
            key = props.asset_check_key.asset_key
        if key is not None and key.path and key.path[0] in DOMAINS:
            return key.path[0]
    return None


def step_queue(step) -> str:
    """Where a step goes: its own ``dagster-celery/queue`` tag, else its domain's queue."""
    return step.tags.get(DAGSTER_CELERY_QUEUE_TAG) or step_domain(step) or DEFAULT_QUEUE


def with_domain_queues(execution_plan):
    """The plan with every step tagged with its queue, so dagster-celery's loop submits it
    there (and says so in its engine events)."""
    def tagged(step):
        if not isinstance(step, ExecutionStep) or DAGSTER_CELERY_QUEUE_TAG in step.tags:
            return step
        return step._replace(tags={**step.tags, DAGSTER_CELERY_QUEUE_TAG: step_queue(step)})

    step_dict = {handle: tagged(step) for handle, step in execution_plan.step_dict.items()}
    by_key = {step.key: step for step in step_dict.values()}
    return execution_plan._replace(step_dict=step_dict, step_dict_by_key=by_key)


class BrokerLost(Exception):
    """The run's Celery broker or result backend went away mid-run."""


# errors of the broker's and the result backend's client libraries that mean "connection lost"
_BROKER_MODULES = ("redis", "kombu", "amqp", "celery.backends")
_BROKER_ERROR_NAMES = ("ConnectionError", "OperationalError")


def redacted(url: str) -> str:
    """``url`` without its password (it lands in run failure messages and the UI)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def is_broker_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it, or an error a worker sent back) is a lost connection
    to the broker or the result backend."""
    from dagster._core.errors import DagsterSubprocessError

    seen = exc
    while seen is not None:
        module = type(seen).__module__
        if module.startswith(_BROKER_MODULES) and type(seen).__name__ in _BROKER_ERROR_NAMES:
            return True
        if isinstance(seen, DagsterSubprocessError):
            return any(info.cls_name in _BROKER_ERROR_NAMES for info in seen.subprocess_error_infos or ())
        seen = seen.__cause__ or seen.__context__
    return False


def fail_fast_on_broker_loss(events, broker_url: str):
    """dagster-celery's event loop, failing the run at the first lost broker connection.

    Celery's clients reconnect, but a broker restarted without persistence has lost every
    queued task message and stored result: the loop would wait for them forever. Failing the
    run at once, naming the broker, bounds that; steps already running on workers finish and
    publish whole outputs (atomic writes), and a re-execution runs what is missing."""
    try:
        yield from events
    except Exception as exc:
        if not is_broker_failure(exc):
            raise
        raise BrokerLost(
            f"lost the connection to the Celery broker / result backend {redacted(broker_url)} "
            f"({CELERY_BROKER_VAR}) mid-run: {type(exc).__name__}: {exc}. Task messages and results it held may "
            f"be gone, so the run stops here instead of waiting for them. Nothing partial was published; "
            f"re-execute the run once the broker is back.") from exc


class DomainCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor with per-domain queues, failing fast when the broker is lost."""

    def execute(self, plan_context, execution_plan):
        from dagster_celery.core_execution_loop import core_celery_execution_loop

        events = core_celery_execution_loop(plan_context, with_domain_queues(execution_plan),
                                            step_execution_fn=_submit_task)
        return fail_fast_on_broker_loss(events, self.broker or celery_broker_url())


@dg.executor(name="celery", config_schema=CELERY_CONFIG,
             requirements=dg.multiple_process_executor_requirements())
def domain_celery_executor(init_context):
    """Celery executor: each step is a task on its domain's queue (broker ``CELERY_BROKER_URL``)."""
    config = init_context.executor_config
    from dagster._core.execution.retries import RetryMode

    return DomainCeleryExecutor(
        broker=config.get("broker"), backend=config.get("backend"), include=config.get("include"),
        config_source={**CELERY_APP_CONFIG, **(config.get("config_source") or {})},
        retries=RetryMode.from_config(config["retries"]),
    )


def celery_app(include=(CODE_LOCATION_MODULE,)):
    """The Celery app of a worker: dagster-celery's task, this project's broker and config,
    the code location imported when the worker starts (not on its first task)."""
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task
    from kombu import Queue

    args = CeleryExecutor.for_cli(broker=celery_broker_url(), backend=celery_backend_url(),
                                  include=list(include), config_source=CELERY_APP_CONFIG).app_args()
    app = make_app(args)
    app.conf.task_queues = [Queue(name, routing_key=f"{name}.#", queue_arguments={"x-max-priority": 10})
                            for name in ALL_QUEUES]
    create_task(app)
    return app


def start_worker(queues=ALL_QUEUES, concurrency: int = 1, name: str | None = None, loglevel: str = "INFO") -> None:
    """Run a Celery worker in this process until it is stopped (``assets-pkg worker``)."""
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(ALL_QUEUES)}")
    argv = ["worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency}", "--pool=prefork",
            "--prefetch-multiplier=1", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if name:
        argv.append(f"--hostname={name}")
    celery_app().worker_main(argv)


