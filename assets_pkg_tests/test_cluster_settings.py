"""The cluster profile's settings and routing, without services: which executor
ASSETS_PKG_EXECUTOR picks, which queue each step goes to, which tags a run gets."""

import pytest

from assets_pkg.run_tags import domain_tags
from assets_pkg.settings import SettingError, executor_kind


def test_the_executor_is_in_process_by_default_and_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.delenv("ASSETS_PKG_EXECUTOR", raising=False)
    assert executor_kind() == "in_process"
    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "celry")
    with pytest.raises(SettingError, match="ASSETS_PKG_EXECUTOR='celry' is not one of in_process, multiprocess, celery"):
        executor_kind()


def test_celery_without_a_broker_fails_naming_celery_broker_url(monkeypatch):
    from assets_pkg.cluster import executor_def

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "celery")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    with pytest.raises(SettingError, match="CELERY_BROKER_URL is not set"):
        executor_def()


@pytest.mark.parametrize("kind,name", [("in_process", "in_process"), ("multiprocess", "multiprocess"),
                                       ("celery", "celery")])
def test_definitions_run_every_job_on_the_executor_the_setting_names(monkeypatch, kind, name):
    from assets_pkg.definitions import build_definitions

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", kind)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    defs = build_definitions()
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == name
    assert defs.resolve_job_def("splits_job").executor_def.name == name


def test_each_step_goes_to_its_domains_queue(monkeypatch):
    from dagster._core.execution.api import create_execution_plan

    from assets_pkg.celery_exec import with_domain_queues
    from assets_pkg.definitions import build_definitions

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "celery")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    job = build_definitions().resolve_implicit_global_asset_job_def()
    plan = with_domain_queues(create_execution_plan(job))
    queues = {step.key: step.tags["dagster-celery/queue"] for step in plan.get_all_steps_in_topo_order()}
    assert queues["summary__account_summary"] == "summary"
    assert queues["split_shards"] == "splits"  # a multi-asset whose op name names no domain
    assert queues["ingest__files"] == "ingest"
    assert queues["logs__log_events"] == "logs"
    assert queues["timeseries__resampled"] == "timeseries"
    assert set(queues.values()) <= {"ingest", "splits", "summary", "logs", "timeseries"}


def test_a_worker_refuses_a_queue_nobody_sends_to(monkeypatch):
    from assets_pkg.celery_exec import start_worker

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="unknown queue\\(s\\) sumary"):
        start_worker(queues=["sumary"])
    with pytest.raises(ValueError, match="at least one step at once, got concurrency 0"):
        start_worker(concurrency=0)


def test_run_tags_name_each_domain_and_a_logs_runs_log_id():
    assert domain_tags({"summary"}) == {"assets_pkg/domain.summary": "true"}
    assert domain_tags(set(), "logs_fetch_window_job") == {"assets_pkg/domain.logs": "true"}
    assert domain_tags({"logs"}, None, {"dagster/partition/log_id": "web"}) == {
        "assets_pkg/domain.logs": "true", "assets_pkg/log_id": "web"}
    assert domain_tags({"timeseries"}, None, {"dagster/partition/log_id": "web"}) == {
        "assets_pkg/domain.timeseries": "true"}
    # every key is one Dagster accepts on a run
    from dagster._utils.tags import VALID_TAG_KEY_REGEX

    for key in domain_tags({"summary", "logs"}, None, {"dagster/partition/log_id": "x"}):
        assert VALID_TAG_KEY_REGEX.match(key), key


def test_the_deploy_workspace_loads_the_code_location_from_a_grpc_server(monkeypatch):
    from pathlib import Path

    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    monkeypatch.setenv("DAGSTER_CODE_HOST", "code.internal")
    workspace = Path(__file__).resolve().parents[1] / "deploy" / "workspace.yaml"
    [origin] = location_origins_from_yaml_paths([str(workspace)])
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert (origin.host, origin.port, origin.location_name) == ("code.internal", 4000, "assets_pkg")


def test_a_lost_broker_connection_fails_the_event_loop_naming_the_broker_without_its_password():
    import redis

    from assets_pkg.celery_exec import BrokerLost, fail_fast_on_broker_loss

    def loop(error):
        yield "event"
        raise error

    url = "redis://user:s3cret@broker.internal:6379/0"
    events = fail_fast_on_broker_loss(loop(redis.exceptions.ConnectionError("Error 111 connecting")), url)
    assert next(events) == "event"
    with pytest.raises(BrokerLost, match=r"redis://user:\*\*\*@broker.internal:6379/0 \(CELERY_BROKER_URL\)") as err:
        next(events)
    assert "s3cret" not in str(err.value)
    # any other error is the run's own, untouched
    with pytest.raises(KeyError):
        list(fail_fast_on_broker_loss(loop(KeyError("step")), url))


def test_the_window_job_keeps_its_result_where_other_processes_read_it_on_a_multiprocess_executor(monkeypatch):
    import dagster as dg

    from assets_pkg.logs import definitions as logs_definitions

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "in_process")
    assert logs_definitions._result_io_manager() is dg.mem_io_manager
    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "multiprocess")
    assert logs_definitions._result_io_manager() is not dg.mem_io_manager


def test_a_failed_run_names_each_failed_step_and_its_own_error():
    """RunFailed (what `assets-pkg demo` prints for an out-of-process run) says why each step
    failed: the innermost cause's first line, not Dagster's wrapper around the op's error."""
    import dagster as dg

    from assets_pkg.cluster import RunFailed

    @dg.op
    def reads_a_gone_file():
        raise FileNotFoundError("inbox/a.csv disappeared\n(a second line the message leaves out)")

    @dg.op
    def fine():
        return 1

    @dg.job
    def two_steps():
        reads_a_gone_file()
        fine()

    result = two_steps.execute_in_process(raise_on_error=False)
    assert str(RunFailed(result)) == (
        f"run {result.run_id} failed (steps: reads_a_gone_file: FileNotFoundError: inbox/a.csv disappeared)")



def test_the_celery_executor_looks_at_its_steps_every_poll_seconds(monkeypatch):
    """dagster-celery's loop waits 1 s between looks at the steps in flight; the project's
    executor makes that its ``poll_seconds`` (run config, default DEFAULT_POLL_SECONDS)."""
    import dagster as dg
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.retries import RetryMode
    from dagster._core.executor.init import InitExecutorContext

    from assets_pkg.celery_exec import DEFAULT_POLL_SECONDS, DomainCeleryExecutor
    from assets_pkg.definitions import build_definitions

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "celery")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    job = build_definitions().resolve_job_def("splits_job")
    # the code location's executor is configured (broker and backend from the settings)
    resolved = dg.validate_run_config(job)["execution"]["celery"]
    assert resolved["poll_seconds"] == DEFAULT_POLL_SECONDS
    with dg.instance_for_test() as instance:
        for config, want in ((resolved, DEFAULT_POLL_SECONDS), ({**resolved, "poll_seconds": 0.5}, 0.5)):
            executor = job.executor_def.executor_creation_fn(InitExecutorContext(
                job=InMemoryJob(job), executor_def=job.executor_def, executor_config=config, instance=instance))
            assert isinstance(executor, DomainCeleryExecutor) and executor.poll_seconds == want
    assert DEFAULT_POLL_SECONDS < 1  # dagster-celery's own wait
    with pytest.raises(ValueError, match="poll_seconds must be > 0, got 0"):
        DomainCeleryExecutor(retries=RetryMode(RetryMode.DISABLED), poll_seconds=0)


def _modules_a_step_imports(tmp_path, preload: bool) -> list[str]:
    """The modules a forked step process imports to open its instance, in a process that
    imported the code location (and preloaded what steps need when ``preload``)."""
    import json
    import os
    import subprocess
    import sys

    home = tmp_path / ("preloaded" if preload else "plain")
    home.mkdir()
    script = (
        "import json, sys\n"
        "import assets_pkg.definitions\n"
        + ("from assets_pkg.celery_exec import preload_for_steps; preload_for_steps()\n" if preload else "")
        + "before = set(sys.modules)\n"
        "import dagster as dg\n"
        "from dagster._core.instance.ref import InstanceRef\n"
        f"with dg.DagsterInstance.from_ref(InstanceRef.from_dir({str(home)!r})) as instance:\n"
        "    instance.get_runs()\n"
        "import dagster_celery.tasks\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n")
    env = {**os.environ, "ASSETS_PKG_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
           "ASSETS_PKG_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_worker_preloads_what_each_steps_fresh_process_would_import(tmp_path):
    """`assets-pkg worker` forks a fresh process per step: what a step's task imports (the
    instance's storages, SQLAlchemy, Alembic, the plan execution) is imported before the fork."""
    plain = _modules_a_step_imports(tmp_path, preload=False)
    preloaded = _modules_a_step_imports(tmp_path, preload=True)
    assert len(plain) > 100 and any(m.startswith("sqlalchemy") for m in plain)
    assert len(preloaded) < 20, preloaded
    assert not any(m.startswith(("sqlalchemy", "alembic", "dagster_celery")) for m in preloaded), preloaded
