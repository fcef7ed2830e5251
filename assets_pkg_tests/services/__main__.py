"""``python -m assets_pkg_tests.services``: start Postgres and Redis on 127.0.0.1, print the
settings that point the cluster profile at them, stop both on Ctrl-C (``make services``)."""

import signal

from assets_pkg_tests.services.postgres import start_postgres
from assets_pkg_tests.services.redis import start_redis


def main() -> int:
    with start_postgres() as postgres, start_redis() as redis:
        print(f"export DAGSTER_POSTGRES_URL={postgres.url}")
        print(f"export CELERY_BROKER_URL={redis.url}")
        print("# Ctrl-C stops both and removes their folders", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
