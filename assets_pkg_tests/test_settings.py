"""Settings are declared once: env values, the launchpad's config class and the README all
come from the declarations, and a bad setting fails only its own domain."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets_pkg.dagster_layer import config_class
from assets_pkg.settings import SettingError, SettingsModel, env_var_of, setting
from assets_pkg.splits.assets import SplitConfig
from assets_pkg.splits.params import SplitParams, params_from_env
from assets_pkg.summary.assets import SummaryConfig
from assets_pkg.summary.config import SummarySettings, load_summary_settings
from assets_pkg.summary.fanout import FanoutSettings
from assets_pkg.splits.fanout import SplitsFanoutSettings
from assets_pkg.ingest.assets import IngestConfig
from assets_pkg.ingest.settings import IngestSettings
from assets_pkg.timeseries.assets import TimeseriesConfig
from assets_pkg.timeseries.settings import TimeseriesSettings

ROOT = Path(__file__).resolve().parent.parent
DECLARATIONS = (SplitParams, SummarySettings, FanoutSettings, SplitsFanoutSettings, IngestSettings,
                TimeseriesSettings)


class Sample(SettingsModel):
    """A sample declaration."""

    rows: int = setting(5, env="SAMPLE_ROWS", description="Rows per thing.")
    ratio: float = setting(0.5, env="SAMPLE_RATIO", form="a number in (0, 1)", description="A share.")
    names: tuple[str, ...] = setting(("a", "b"), env="SAMPLE_NAMES", description="Some names.")
    label: str = setting("x", description="No env var.")


def launchpad_fields(config_cls) -> dict:
    """(description, required) of each field as Dagster's launchpad schema shows it."""
    @dg.asset
    def probe(config: config_cls):
        """Probe."""
    fields = probe.op.config_schema.as_field().config_type.fields
    return {name: (f.description, f.is_required) for name, f in fields.items()}


def test_generated_config_class_has_the_declared_fields_defaults_and_descriptions(monkeypatch):
    Config = config_class(Sample)
    declared = {name: (f.description, False) for name, f in Sample.model_fields.items()}
    assert launchpad_fields(Config) == declared
    made = Config()
    assert (made.rows, made.ratio, made.names, made.label) == (5, 0.5, ["a", "b"], "x")
    assert made.settings() == Sample()
    monkeypatch.setenv("SAMPLE_ROWS", "7")
    monkeypatch.setenv("SAMPLE_NAMES", "c, d")
    assert (Config().rows, Config().names) == (7, ["c", "d"])  # env read when the run builds it
    assert Config(rows=9).settings().rows == 9  # run config wins over env


def test_generated_config_class_works_as_asset_config(monkeypatch):
    Config = config_class(Sample)

    @dg.asset
    def thing(config: Config) -> int:
        """Rows times ratio."""
        return config.settings().rows * 10 + len(config.names)

    assert dg.materialize([thing]).output_for_node("thing") == 52
    run_config = {"ops": {"thing": {"config": {"rows": 3, "names": ["z"]}}}}
    assert dg.materialize([thing], run_config=run_config).output_for_node("thing") == 31
    monkeypatch.setenv("SAMPLE_RATIO", "lots")
    result = dg.materialize([thing], raise_on_error=False)
    assert not result.success
    error = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0].event_specific_data.error
    assert "SAMPLE_RATIO='lots' is not a number" in error.to_string()


@pytest.mark.parametrize("config_cls,model,extra,hidden", [
    (SplitConfig, SplitParams, set(), set()),
    (SummaryConfig, SummarySettings, {"accounts", "config_file", "backfill_filter"}, {"value_types"}),  # value_types: the file only
    (IngestConfig, IngestSettings, set(), set()),
    (TimeseriesConfig, TimeseriesSettings, set(), {"start_date"}),  # the partitions' start: read at load
])
def test_domain_config_classes_follow_their_declaration(config_cls, model, extra, hidden):
    shown = {name: f.description for name, f in config_cls.model_fields.items()}
    declared = {name: f.description for name, f in model.model_fields.items() if name in shown}
    assert set(shown) - set(declared) == extra
    assert set(model.model_fields) - set(shown) == hidden
    assert all(shown[name] == declared[name] for name in declared)


def test_env_errors_name_the_variable_and_the_form(monkeypatch):
    monkeypatch.setenv("SAMPLE_ROWS", "many")
    with pytest.raises(SettingError, match="SAMPLE_ROWS='many' is not an integer"):
        Sample.from_env()
    monkeypatch.delenv("SAMPLE_ROWS")
    with pytest.raises(SettingError, match=r"SAMPLE_RATIO='x': .*expected a number in \(0, 1\)"):
        Sample.from_env(ratio="x")
    with pytest.raises(SettingError, match="unknown setting 'colour'"):
        Sample(colour="red")
    monkeypatch.setenv("CONSOLIDATE_STREAMING_OUTPUT", "maybe")
    with pytest.raises(SettingError, match="CONSOLIDATE_STREAMING_OUTPUT='maybe' is not a boolean"):
        params_from_env()


def test_summary_env_applies_under_a_file_that_does_not_set_it(tmp_path, monkeypatch):
    path = tmp_path / "summary.yaml"
    path.write_text("history_length: 12\n")
    monkeypatch.setenv("SUMMARY_SKIP_BAD_BATCHES", "true")
    assert load_summary_settings(path).skip_bad_batches is True
    path.write_text("history_length: 12\nskip_bad_batches: false\n")
    assert load_summary_settings(path).skip_bad_batches is False
    path.write_text("history_length: twelve\n")
    with pytest.raises(SettingError, match=f"SUMMARY_CONFIG file {path}: history_length='twelve'"):
        load_summary_settings(path)


def _readme_rows() -> dict:
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3:
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[2]
    return rows


def _shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return ",".join(value) if isinstance(value, tuple) else str(value)


def test_readme_lists_every_declared_env_var_with_its_default():
    rows = _readme_rows()
    for model in DECLARATIONS:
        for name, field in model.model_fields.items():
            var = env_var_of(model, name)
            if var is None:
                continue
            assert var in rows, f"README settings table lacks {var} ({model.__name__}.{name})"
            cell = rows[var]
            default = _shown(field.get_default(call_default_factory=True))
            if default and re.fullmatch(r"`[^`]*`", cell):  # a plain default: it must be the declared one
                assert cell.strip("`") == default, var


def probe(tmp_path, **env) -> dict:
    root = tmp_path / "data"
    (root / ".dagster").mkdir(parents=True)
    run_env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSETS_PKG_DATA_DIR": str(root),
               "DAGSTER_HOME": str(root / ".dagster"), **env}
    for name in ("SUMMARY_CONFIG", "TRAIN_RATIO"):
        if name not in env:
            run_env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "assets_pkg_tests.settings_probe", str(root)], env=run_env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bad_split_setting_fails_only_the_splits_domain(tmp_path):
    out = probe(tmp_path, TRAIN_RATIO="abc")
    assert "TRAIN_RATIO='abc' is not a number" in out["splits_tick"]
    assert "TRAIN_RATIO='abc' is not a number" in out["splits"]
    assert out["summary"] == "ok"


@pytest.mark.slow
def test_unset_required_split_setting_fails_only_the_splits_domain(tmp_path):
    out = probe(tmp_path, SPLIT_DATE="")  # empty is unset; the code location still loads
    assert "SPLIT_DATE='' is not set; it is required" in out["splits_tick"]
    assert "SPLIT_DATE='' is not set; it is required" in out["splits"]
    assert out["summary"] == "ok"


@pytest.mark.slow
def test_broken_summary_config_fails_only_the_summary_domain(tmp_path):
    broken = tmp_path / "summary.yaml"
    broken.write_text("history_length: [unclosed\n")
    out = probe(tmp_path, SUMMARY_CONFIG=str(broken))
    assert f"SUMMARY_CONFIG file {broken}: cannot parse" in out["summary"]
    assert out["splits_tick"] == "ok" and out["splits"] == "ok"


@pytest.mark.slow
def test_bad_log_start_date_fails_only_the_logs_domain(tmp_path):
    out = probe(tmp_path, LOG_START_DATE="bad")
    assert "LOG_START_DATE='bad' is not a date" in out["logs"]
    assert out["splits"] == "ok" and out["summary"] == "ok"


def test_launchpads_show_every_setting_with_its_real_default():
    """Each domain's launchpad pre-fills every field with the value a run would use (the env
    of the loaded code location), not just the fields without an env var."""
    code = (
        "import json; from assets_pkg.definitions import defs\n"
        "out = {}\n"
        "for job, path in (('splits_job', ('resources', 'split_config', 'config')),\n"
        "                  ('ingest_job', ('ops', 'ingest__files', 'config'))):\n"
        "    t = defs.resolve_job_def(job).run_config_schema.config_type\n"
        "    for part in path:\n"
        "        t = t.fields[part].config_type\n"
        "    out[job] = {n: (f.default_value if f.default_provided else '<none>') for n, f in t.fields.items()}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "TRAIN_RATIO": "0.8", "SPLIT_DATE": "2024-02-01", "CHUNK_SIZE": "5000"}
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    splits = shown["splits_job"]
    assert set(splits) == set(SplitParams.model_fields) and "<none>" not in splits.values()
    assert (splits["train_ratio"], splits["split_date"], splits["random_seed"]) == (0.8, "2024-02-01", 42)
    assert shown["ingest_job"]["chunk_size"] == 5000 and "<none>" not in shown["ingest_job"].values()


def test_a_shown_default_follows_the_env_of_the_run(monkeypatch):
    """Dagster fills the shown (load-time) default into the run's config: the run still
    reads the env as it is when the run starts; a value the user changed wins."""
    monkeypatch.setenv("SAMPLE_ROWS", "7")
    Config = config_class(Sample)
    assert launchpad_default(Config, "rows") == 7
    monkeypatch.setenv("SAMPLE_ROWS", "11")

    @dg.asset
    def thing(config: Config) -> int:
        """Rows."""
        return config.settings().rows

    assert dg.materialize([thing]).output_for_node("thing") == 11
    run_config = {"ops": {"thing": {"config": {"rows": 3}}}}
    assert dg.materialize([thing], run_config=run_config).output_for_node("thing") == 3


def launchpad_default(config_cls, name):
    @dg.asset
    def probe(config: config_cls):
        """Probe."""
    return probe.op.config_schema.as_field().config_type.fields[name].default_value
