"""Run every benchmark and print its table: `python -m bench [--quick] [--only reader ...]`.

Each benchmark measures its candidates side by side in one run and reports ratios,
because this machine is shared and absolute timings are noisy.
"""

import argparse
import importlib
import sys
import time

BENCHMARKS = ("reader", "splits", "summary", "logs", "timeseries", "storage", "cluster")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a sanity run")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS)
    args = parser.parse_args(argv)
    failures = 0
    for name in args.only or BENCHMARKS:
        print(f"\n### bench/{name}.py", flush=True)
        started = time.perf_counter()
        try:
            code = importlib.import_module(f"bench.{name}").main(["--quick"] if args.quick else [])
        except Exception as exc:  # keep going: one broken benchmark should not hide the rest
            print(f"bench/{name}.py failed: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        failures += bool(code)
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
