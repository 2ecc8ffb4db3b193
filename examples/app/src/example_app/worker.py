"""Background worker: ``python -m example_app.worker`` writes a heartbeat row to ``jobs``
every ``WORKER_INTERVAL`` seconds (default 5) and exits 0 on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import sqlalchemy as sa

from example_app import db

log = logging.getLogger("example_app.worker")

DEFAULT_INTERVAL = 5.0


def interval_from_env() -> float:
    """Return ``WORKER_INTERVAL`` in seconds (must be > 0)."""
    raw = os.environ.get("WORKER_INTERVAL", "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    value = float(raw)
    if value <= 0:
        raise ValueError(f"WORKER_INTERVAL must be > 0, got {raw!r}")
    return value


def run_once() -> int:
    """Write one heartbeat row and return its id."""
    with db.get_engine().begin() as conn:
        result = conn.execute(
            sa.insert(db.jobs).values(
                hostname=db.hostname(),
                release=db.release_id(),
                pid=os.getpid(),
                created_at=db.utcnow(),
            )
        )
        key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def run(stop: threading.Event, interval: float) -> None:
    """Write heartbeats until ``stop`` is set; a failed write is logged and retried next tick."""
    while not stop.is_set():
        try:
            job_id = run_once()
            log.info("heartbeat %d written", job_id)
        except Exception:  # keep running through database outages
            log.exception("heartbeat failed")
        stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m example_app.worker", description=__doc__)
    parser.add_argument("--once", action="store_true", help="write one heartbeat and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.once:
        log.info("heartbeat %d written", run_once())
        return 0

    interval = interval_from_env()
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("worker started: release %s, interval %ss", db.release_id(), interval)
    run(stop, interval)
    db.dispose_engine()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
