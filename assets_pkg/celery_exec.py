"""The Celery side of the cluster profile: dagster-celery's executor with a queue per domain,
and the worker (``assets-pkg worker``). Imported only when ``ASSETS_PKG_EXECUTOR=celery`` or a
worker starts, so the embedded profile never loads Celery.

Retry policy: none. A step whose worker process dies (SIGKILL, OOM) fails with Celery's
``WorkerLostError``, its run fails, and nothing it was writing is published (every write is
a temp file renamed into place); re-running the run recomputes exactly those partitions.
"""

import importlib
import threading

import dagster as dg
from celery import bootsteps
from celery.concurrency.asynpool import AsynPool
from celery.concurrency.prefork import TaskPool
from celery.states import READY_STATES
from dagster._core.execution.plan.step import ExecutionStep
from dagster_celery import core_execution_loop as celery_loop
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

from assets_pkg.cluster import CODE_LOCATION_MODULE
from assets_pkg.domains import DOMAINS
from assets_pkg.settings import CELERY_BROKER_VAR, celery_backend_url, celery_broker_url, get_settings
from assets_pkg.storage.root import is_remote

DEFAULT_QUEUE = "dagster"  # dagster-celery's own queue: steps of no domain
ALL_QUEUES = (*DOMAINS, DEFAULT_QUEUE)
# Celery settings shared by the orchestrating process and the workers. One task at a time
# per worker process, acknowledged when it starts (Celery's default): a worker process that
# dies mid-step gets its task failed (WorkerLostError), never silently re-run elsewhere.
CELERY_APP_CONFIG = {
    "worker_prefetch_multiplier": 1,
    "task_acks_late": False,
    # a running task's state names its worker (hostname, pid): the run's LostWorkerWatch pings it
    "task_track_started": True,
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


# dagster-celery's loop sleeps its module's TICK_SECONDS (1 s) between two looks at the
# submitted steps' results, so every step's hand-off to the next one waited up to a second
# (half a second on average per step on the run's critical path). The executor sets it to
# its poll_seconds: a look costs one result-backend read per step in flight.
if not hasattr(celery_loop, "TICK_SECONDS"):
    raise ImportError("dagster_celery.core_execution_loop has no TICK_SECONDS: the installed dagster-celery "
                      "changed its loop, and assets_pkg.celery_exec sets the loop's poll through it")
DEFAULT_POLL_SECONDS = 0.05
DEFAULT_LOST_WORKER_CHECK_SECONDS = 10.0


class LostWorkerWatch:
    """Fails the step of a worker that is gone.

    A worker killed whole (its main process with its pool, or its machine) takes its running
    task with it: the task was acknowledged when it started, nobody reports it lost, and
    dagster-celery's loop would wait for its result until run monitoring's
    ``max_runtime_seconds``. (A killed pool process alone is reported by its worker:
    ``WorkerLostError``.) Every ``every_s`` seconds this thread pings the worker of each
    started, unfinished task; a worker that misses ``misses`` pings in a row has its task
    stored as failed (``WorkerLostError`` naming the worker), which the loop reads like any
    failed step: the run fails, nothing partial was published, a re-execution runs the step.
    """

    def __init__(self, every_s: float, misses: int = 2, ping_timeout_s: float = 2.0):
        self.every_s, self.misses, self.ping_timeout_s = every_s, misses, ping_timeout_s
        self.app = None
        self.results: dict = {}  # step key -> AsyncResult
        self._missed: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lost-worker-watch", daemon=True)

    def submit(self, app, plan_context, step, queue, priority, known_state):
        """dagster-celery's ``_submit_task``, the task remembered."""
        self.app = app
        result = _submit_task(app, plan_context, step, queue, priority, known_state)
        self.results[step.key] = result
        return result

    def __enter__(self) -> "LostWorkerWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + self.ping_timeout_s + 5)

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except Exception:  # the broker's loss is the loop's to report (fail_fast_on_broker_loss)
                pass

    def check(self) -> None:
        """One look: ping the workers of the started tasks, fail the tasks of a silent one."""
        from celery.exceptions import WorkerLostError

        running: dict[str, list] = {}  # worker hostname -> [(step key, result)]
        for key, result in list(self.results.items()):
            meta = self.app.backend.get_task_meta(result.id)
            status, info = meta.get("status"), meta.get("result")
            if status in READY_STATES:
                self.results.pop(key, None)
            elif status == "STARTED" and isinstance(info, dict) and info.get("hostname"):
                running.setdefault(info["hostname"], []).append((key, result))
        for hostname, steps in running.items():
            replies = self.app.control.ping(destination=[hostname], timeout=self.ping_timeout_s)
            if any(hostname in reply for reply in replies):
                self._missed.pop(hostname, None)
                continue
            self._missed[hostname] = self._missed.get(hostname, 0) + 1
            if self._missed[hostname] < self.misses:
                continue
            for key, result in steps:
                if self.app.backend.get_task_meta(result.id).get("status") != "STARTED":
                    continue  # it ended meanwhile: its own result stands
                self.app.backend.mark_as_failure(result.id, WorkerLostError(
                    f"Celery worker {hostname} stopped answering while it ran step {key} (no reply to "
                    f"{self.misses} pings {self.every_s:g} s apart): the worker or its machine was lost "
                    f"mid-step. Nothing partial was published; re-execute the run."))


EXECUTOR_CONFIG = {
    **CELERY_CONFIG,
    "poll_seconds": dg.Field(
        float, is_required=False, default_value=DEFAULT_POLL_SECONDS,
        description="Seconds between two looks of the run's process at its steps in flight (dagster-celery "
                    "waits 1 s). Each look reads each step's result once from the result backend: with "
                    "hundreds of steps in flight a longer poll saves that backend's and this process's work; "
                    "with a few, a step's successor starts within this delay of its end."),
    "lost_worker_check_seconds": dg.Field(
        float, is_required=False, default_value=DEFAULT_LOST_WORKER_CHECK_SECONDS,
        description="Seconds between two pings of the workers running the run's steps: a worker that "
                    "misses two in a row (killed whole, or its machine lost) has its step failed, and the "
                    "run with it, instead of waiting for a result that will never come."),
}


class DomainCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor with per-domain queues and a short poll, failing fast when
    the broker is lost."""

    def __init__(self, *args, poll_seconds: float = DEFAULT_POLL_SECONDS,
                 lost_worker_check_seconds: float = DEFAULT_LOST_WORKER_CHECK_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        for name, value in (("poll_seconds", poll_seconds), ("lost_worker_check_seconds", lost_worker_check_seconds)):
            if not value > 0:
                raise ValueError(f"the celery executor's {name} must be > 0, got {value}")
        self.poll_seconds = poll_seconds
        self.lost_worker_check_seconds = lost_worker_check_seconds

    def execute(self, plan_context, execution_plan):
        # a process orchestrates one run at a time (run worker, execute_job), so the
        # module-wide tick is this run's
        celery_loop.TICK_SECONDS = self.poll_seconds
        with LostWorkerWatch(self.lost_worker_check_seconds) as watch:
            events = celery_loop.core_celery_execution_loop(plan_context, with_domain_queues(execution_plan),
                                                            step_execution_fn=watch.submit)
            yield from fail_fast_on_broker_loss(events, self.broker or celery_broker_url())


@dg.executor(name="celery", config_schema=EXECUTOR_CONFIG,
             requirements=dg.multiple_process_executor_requirements())
def domain_celery_executor(init_context):
    """Celery executor: each step is a task on its domain's queue (broker ``CELERY_BROKER_URL``),
    its results looked at every ``poll_seconds``."""
    config = init_context.executor_config
    from dagster._core.execution.retries import RetryMode

    return DomainCeleryExecutor(
        broker=config.get("broker"), backend=config.get("backend"), include=config.get("include"),
        config_source={**CELERY_APP_CONFIG, **(config.get("config_source") or {})},
        retries=RetryMode.from_config(config["retries"]), poll_seconds=config["poll_seconds"],
        lost_worker_check_seconds=config["lost_worker_check_seconds"],
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
    # what "--pool=prefork" starts (Celery reads it from here for the default pool name)
    app.conf.worker_pool = f"{StepPool.__module__}:{StepPool.__name__}"
    create_task(app)
    return app


# What each step's process would import again after the pool forks it: the instance a task
# opens from its ref (Dagster's storages; the Postgres ones pull in SQLAlchemy, Alembic and
# psycopg2), the plan execution and the compute-log capture. Imported once before the fork,
# they are shared by every fresh pool process (bench/NOTES.md "Cluster step overhead").
PRELOAD_MODULES = (
    "dagster._core.instance.factory",
    "dagster._core.storage.runs",
    "dagster._core.storage.event_log",
    "dagster._core.storage.schedules",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.execution.api",
    "dagster._core.execution.plan.active",
    "dagster_celery.tasks",
    "upath.implementations.local",
)
OPTIONAL_PRELOAD_MODULES = ("dagster_postgres",)  # the deploy instance's storage; absent: SQLite
REMOTE_ROOT_PRELOAD_MODULES = ("s3fs", "upath.implementations.cloud")  # an object-store data root's client


def preload_for_steps() -> None:
    """Before the pool forks: the code location, the modules every step's task imports, and
    the code location's jobs resolved (each task builds its step's plan from its job)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    for name in PRELOAD_MODULES:
        importlib.import_module(name)
    for name in OPTIONAL_PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if is_remote(get_settings().data_root):  # modules only: an s3fs filesystem is not fork-safe
        for name in REMOTE_ROOT_PRELOAD_MODULES:
            importlib.import_module(name)
    repository = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, "defs").get_definition()
    repository.get_all_jobs()


# Celery's prefork pool replaces a process that exited (after its one step) at once, except
# when the worker already handed that process its next task: the replacement then waits for
# the pool's maintenance timer, every 5 s (celery/celery#9588): the step waits that long on
# a worker with nothing else to do (bench/NOTES.md "Cluster step overhead"). The pool below
# runs that timer every POOL_MAINTAIN_S (a look at each pool process's exit status).
POOL_MAINTAIN_S = 0.1


class _PromptAsynPool(AsynPool):
    @property
    def timers(self):
        return {self.maintain_pool: POOL_MAINTAIN_S}

    def on_job_ready(self, job, i, obj, inqW_fd):
        """A process that ran its last step no longer gets jobs. Billiard's child lingers a
        second after that step (``Worker._do_exit``) with its queue still open, and Celery
        wrote the next step into it as readily as into an idle process: the step then waited
        for that process to exit and be replaced (1.3-1.4 s on a same-worker hand-off)."""
        super().on_job_ready(job, i, obj, inqW_fd)
        # billiard's and Celery's bookkeeping, read defensively: an error here would stop the
        # worker's event loop, and a changed attribute only brings the wait back
        limit = getattr(self, "_maxtasksperchild", None)
        entry = getattr(self, "_cache", {}).get(job)  # ``job`` is the job's id here
        process = getattr(entry, "_write_to", None)
        inqueues = getattr(self, "_all_inqueues", None)
        if limit and process is not None and inqueues is not None:
            process.steps_done = getattr(process, "steps_done", 0) + 1
            if process.steps_done >= limit:
                inqueues.discard(inqW_fd)


class StepPool(TaskPool):
    """Celery's prefork pool (``--pool=prefork``), its exited processes replaced within
    POOL_MAINTAIN_S."""

    Pool = _PromptAsynPool


# A step that follows another on the same worker waited 1.3-1.5 s for a process: the one that
# ran the earlier step was still exiting, then its replacement was forked and initialised
# (bench/NOTES.md "Cluster hand-off"). A worker that replaces its processes after each
# step therefore keeps one more pool process than the steps it runs at once: the next step
# starts in a process forked ahead of need while the last one exits. The steps at once stay
# bounded by Celery's own "no prefetch" consumer limit (``worker_disable_prefetch``, Redis
# brokers only), which takes no new task while ``max_concurrency`` are received and unfinished.
STEPS_AT_ONCE_SETTING = "assets_pkg_steps_at_once"


class StepsAtOnce(bootsteps.Step):
    """Worker bootstep: at most ``app.conf.assets_pkg_steps_at_once`` steps received at once,
    whatever the pool's size."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker, **kwargs):
        steps = worker.app.conf.get(STEPS_AT_ONCE_SETTING)
        if steps:
            worker.max_concurrency = steps  # read by the consumer's prefetch count and its limit
        super().__init__(worker, **kwargs)


def is_redis_url(url: str) -> bool:
    return url.split("://", 1)[0] in ("redis", "rediss", "redis+socket")


def start_worker(queues=ALL_QUEUES, concurrency: int = 1, name: str | None = None, loglevel: str = "INFO",
                 steps_per_process: int = 1) -> None:
    """Run a Celery worker in this process until it is stopped (``assets-pkg worker``).

    ``steps_per_process``: Celery's ``--max-tasks-per-child``. A pool process that ran a step
    keeps that step's peak as its resident memory (allocators rarely give it back), so with
    reuse the next step on it starts from the largest earlier peak: at 1M accounts a summary
    combine step measured 1.3-1.6 GB in a reused process against 0.7 GB in a fresh one. With
    1 every step gets a fresh process; the code location and what every step imports are
    loaded here (:func:`preload_for_steps`), before the pool forks, so a fresh process costs a
    fork, not an import, and with a Redis broker one spare process is forked ahead of the next
    step (:class:`StepsAtOnce`)."""
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(ALL_QUEUES)}")
    if steps_per_process < 0:
        raise ValueError(f"steps per process must be >= 0 (0: never replaced), got {steps_per_process}")
    if concurrency < 1:
        raise ValueError(f"a worker runs at least one step at once, got concurrency {concurrency}")
    importlib.import_module(CODE_LOCATION_MODULE)
    preload_for_steps()
    app = celery_app()
    spare = 1 if steps_per_process and is_redis_url(celery_broker_url()) else 0
    if spare:
        app.conf.worker_disable_prefetch = True
        app.conf[STEPS_AT_ONCE_SETTING] = concurrency
        app.steps["worker"].add(StepsAtOnce)
    argv = ["worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency + spare}", "--pool=prefork",
            "--prefetch-multiplier=1", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if steps_per_process:
        argv.append(f"--max-tasks-per-child={steps_per_process}")
    if name:
        argv.append(f"--hostname={name}")
    app.worker_main(argv)


