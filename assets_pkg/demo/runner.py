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


def run_demo(scale: str = "demo", domains=DEMO_DOMAINS, out=sys.stdout) -> int:
    settings = get_settings()
    generated = generate_inputs(settings, domains, scale)
    from assets_pkg.definitions import defs

    report = DemoReport()
    report.line(f"data root: {settings.data_root}")
    report.line(f"generated sample inputs for: {', '.join(generated) or 'none (inboxes not empty)'}")
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
        print(f"\ndemo FAILED: {len(failed)} ERROR check(s) failed, {len(report.errors)} domain error(s)", file=out)
        return 1
    print("\ndemo OK: every ERROR check passed", file=out)
    return 0
