"""`assets-pkg demo`: generate sample inputs where an inbox is empty, run every domain, report."""

import importlib
import sys
import time
import traceback
from pathlib import Path

from assets_pkg.demo.framework import DemoContext, DemoReport
from assets_pkg.domains import DOMAINS as DEMO_DOMAINS
from assets_pkg.instance import open_instance
from assets_pkg.settings import Settings, get_settings

UI_URL = "http://127.0.0.1:3000"  # where `make ui` serves it


def demo_module(domain: str):
    return importlib.import_module(f"assets_pkg.demo.{domain}")


def inbox_is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(p for p in folder.rglob("*") if p.is_file())


def generate_inputs(settings: Settings, domains, scale: str, force: bool = False) -> list[str]:
    """Generate each domain's sample inputs where its inbox is empty; return what was made."""
    made = []
    for domain in domains:
        module = demo_module(domain)
        inbox = settings.inbox / module.INBOX
        if force or inbox_is_empty(inbox):
            inbox.mkdir(parents=True, exist_ok=True)
            module.generate(inbox, scale=scale)
            made.append(domain)
    return made


def demo_log(settings: Settings) -> Path:
    """Where `assets-pkg demo` sends Dagster's console output (stderr), away from the report."""
    return settings.dagster_home / "demo.log"


def run_demo(scale: str = "demo", domains=DEMO_DOMAINS, out=sys.stdout) -> int:
    settings = get_settings()
    generated = generate_inputs(settings, domains, scale)
    from assets_pkg.definitions import defs

    report = DemoReport()
    report.line(f"data root: {settings.data_root}")
    report.line(f"generated sample inputs for: {', '.join(generated) or 'none (inboxes not empty)'}")
    report.line(f"Dagster's log of these runs (DEBUG events, progress, tracebacks): {demo_log(settings)}")
    graph = defs.resolve_asset_graph()
    report.expect_checks((k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys
                         if graph.get(k.asset_key).group_name in domains)
    with open_instance(settings) as instance:
        ctx = DemoContext(settings=settings, instance=instance, defs=defs, report=report, scale=scale)
        for domain in domains:
            started = time.perf_counter()
            report.section(domain)
            try:
                demo_module(domain).run(ctx)
            except Exception as exc:  # one broken domain must not hide the others' results
                report.errors.append(f"{domain}: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
            report.line(f"({time.perf_counter() - started:.1f} s)")
    print(report.render(), file=out)
    failed = report.failed_error_checks
    if failed or report.errors:
        print(f"\ndemo FAILED: {len(failed)} ERROR check(s) failed, {len(report.errors)} domain error(s); "
              f"details in {demo_log(settings)}", file=out)
    else:
        print("\ndemo OK: every ERROR check passed", file=out)
    print(next_steps(settings, domains), file=out)
    return 1 if failed or report.errors else 0


def next_steps(settings: Settings, domains) -> str:
    """What a first-time user does after the demo: where to look, where to drop files."""
    lines = ["", "== Next",
             f"   make ui      the Dagster UI at {UI_URL}: lineage, runs, partitions, check results",
             "   drop files into an inbox folder; while `make ui` runs, its sensor starts a run within a minute",
             "   (sensors start on; ASSETS_PKG_AUTOMATION=off starts them stopped):"]
    for domain in domains:
        lines.append(f"     {domain:<11} {settings.inbox / demo_module(domain).INBOX}/")
    lines += [f"   outputs:    {settings.warehouse}/ (one file per partition)",
              f"               {settings.exports}/ (exports) and {settings.cache}/ (log segments)",
              f"   runs:       {settings.dagster_home}/ (Dagster's run history, shown by the UI)"]
    return "\n".join(lines)
