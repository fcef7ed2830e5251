"""`assets-pkg`: demo, check, generate, stream, plus each domain's own subcommands."""

import argparse
import importlib
import sys

from assets_pkg.domains import DOMAINS


def _cmd_demo(args) -> int:
    from assets_pkg.demo.framework import stderr_to
    from assets_pkg.demo.runner import DEMO_DOMAINS, demo_log, run_demo
    from assets_pkg.settings import get_settings

    # the report goes to stdout; Dagster's console lines (stderr) to the log it names
    with stderr_to(demo_log(get_settings())):
        return run_demo(scale=args.scale, domains=args.only or DEMO_DOMAINS)


def _cmd_generate(args) -> int:
    from assets_pkg.demo.runner import DEMO_DOMAINS, generate_inputs
    from assets_pkg.settings import get_settings

    settings = get_settings()
    made = generate_inputs(settings, args.domains or DEMO_DOMAINS, args.scale, force=args.force)
    print(f"generated: {', '.join(made) or 'nothing (inboxes not empty; --force to overwrite)'}")
    return 0


def _cmd_init(args) -> int:
    from assets_pkg.instance import init_instance

    print(f"Dagster instance ready at {init_instance()}")
    return 0


def _cmd_check(args) -> int:
    from assets_pkg.checking import stored_folder_outcomes
    from assets_pkg.settings import get_settings

    outcomes = []
    folders = []  # the domains' multi-object folders, for the object-store commit rules
    for domain in DOMAINS:
        if args.group and domain != args.group:
            continue
        module = importlib.import_module(f"assets_pkg.{domain}.checks")
        outcomes.extend(module.evaluate_materialized())
        folders.extend(getattr(module, "multi_object_folders", list)())
    outcomes.extend(stored_folder_outcomes(get_settings().data_root, folders))
    for outcome in outcomes:
        print(outcome.line())
    failed = [o for o in outcomes if o.blocking_failure]
    print(f"{len(outcomes)} checks, {len(failed)} ERROR failures")
    from assets_pkg.dagster_layer import record_check_outcomes
    from assets_pkg.definitions import defs
    from assets_pkg.instance import open_instance

    with open_instance() as instance:  # the UI shows these as each check's latest evaluation
        recorded = record_check_outcomes(instance, defs, outcomes)
    print(f"recorded {recorded} check evaluation(s) in the Dagster instance ({instance.root_directory})")
    return 1 if failed else 0


def _cmd_worker(args) -> int:
    from assets_pkg.celery_exec import ALL_QUEUES, start_worker

    start_worker(queues=args.queues or ALL_QUEUES, concurrency=args.concurrency, name=args.name,
                 loglevel=args.loglevel, steps_per_process=args.steps_per_process)
    return 0


def _domain(name: str) -> str:
    if name not in DOMAINS:
        raise argparse.ArgumentTypeError(f"invalid domain {name!r} (choose from {', '.join(DOMAINS)})")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assets-pkg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate sample inputs where missing and run the whole graph")
    demo.add_argument("--scale", default="demo", choices=["demo", "test"], help="sample data size: demo (a few minutes) or test (seconds) (default demo)")
    demo.add_argument("--only", nargs="*", choices=DOMAINS, help="run only these domains (default: every domain)")
    demo.set_defaults(func=_cmd_demo)

    gen = sub.add_parser("generate", help="write deterministic sample inputs into data/inbox/")
    # No `choices=` here: argparse checks an empty `nargs="*"` list against the choices and
    # fails with "invalid choice: []", yet no domain means every domain.
    gen.add_argument("domains", nargs="*", type=_domain, metavar="DOMAIN",
                     help=f"domains to generate ({', '.join(DOMAINS)}); none = all")
    gen.add_argument("--scale", default="demo", choices=["demo", "test"],
                     help="sample data size: demo or test (smaller) (default demo)")
    gen.add_argument("--force", action="store_true", help="generate even where the inbox has files")
    gen.set_defaults(func=_cmd_generate)

    init = sub.add_parser("init", help="create the Dagster instance at DAGSTER_HOME once (before `dagster dev`)")
    init.set_defaults(func=_cmd_init)

    check = sub.add_parser("check", help="run every asset check on what is materialized now")
    check.add_argument("--group", choices=DOMAINS, help="only this group's checks (default: every group)")
    check.set_defaults(func=_cmd_check)

    worker = sub.add_parser("worker", help="start a Celery worker that executes steps of the code location "
                                           "(ASSETS_PKG_EXECUTOR=celery; broker CELERY_BROKER_URL)")
    worker.add_argument("-Q", "--queues", nargs="*", metavar="QUEUE",
                        help="queues to consume: domains (ingest splits summary logs timeseries) and dagster "
                             "(default: all of them)")
    worker.add_argument("-c", "--concurrency", type=int, default=1,
                        help="steps this worker runs at once, each in its own process (default 1)")
    worker.add_argument("-n", "--name", help="worker name, shown in step events (default celery@<host>)")
    worker.add_argument("--steps-per-process", type=int, default=1, metavar="N",
                        help="steps a worker process runs before a fresh one replaces it; 1: every step "
                             "starts in a fresh process, so its peak memory is its own and is returned "
                             "when it ends; 0: processes are never replaced (default 1)")
    worker.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    worker.set_defaults(func=_cmd_worker)

    for domain in DOMAINS:
        try:
            module = importlib.import_module(f"assets_pkg.{domain}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"assets_pkg.{domain}.cli":
                raise
            continue  # this domain has no subcommands of its own
        module.register(sub)
    return parser


def main(argv=None) -> int:
    from assets_pkg.settings import get_settings
    from assets_pkg.storage import StorageError, check_reachable

    args = build_parser().parse_args(argv)
    try:
        # a missing bucket, refused keys or no endpoint: one clear line, before any work
        check_reachable(get_settings().data_root)
        return int(args.func(args) or 0)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
