"""Backoff: each wait before a retry is longer than the last, up to a cap.

A process connects to a database that is still starting: the first four attempts fail,
the fifth succeeds. With ``backoff_factor=2.0`` the waits double (0.05, 0.1, 0.2 s)
until ``max_interval`` caps them (0.3 s). Then the process asks the supervisor to shut
down, and the example exits with the report's exit code (0). ``reset_after`` gives a
connection that later drops, after a minute's good run, a fresh set of attempts: without
it, attempts count over the process's whole life. Run it::

    python3 examples/backoff.py
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "supervisor.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from supervisor import (  # noqa: E402
    ProcessFailed,
    ProcessOption,
    ProcessWaiting,
    Supervisor,
    SupervisorEvent,
    TerminateChannel,
)

ATTEMPTS_BEFORE_READY = 5


def main() -> int:
    # This example prints events instead of the supervisor's log (see examples/demo.py).
    logging.getLogger("supervisor").setLevel(logging.CRITICAL)
    began = time.monotonic()
    attempts = 0

    def on_event(event: SupervisorEvent) -> None:
        if isinstance(event, ProcessFailed):
            print(f"    attempt {event.attempt} failed: {event.error!r}")
        elif isinstance(event, ProcessWaiting):
            print(f"    the supervisor waits {event.delay:.2f} s before the next {event.kind}")

    sup = Supervisor(on_event=on_event)

    def connect(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        nonlocal attempts
        attempts += 1
        print(f"t={time.monotonic() - began:.2f} s  attempt {attempts}: connecting")
        if attempts < ATTEMPTS_BEFORE_READY:
            return ConnectionRefusedError("the database is still starting")  # retry, please
        print(f"t={time.monotonic() - began:.2f} s  connected; asking for a shutdown")
        sup.shutdown()  # allowed from anywhere, a process included
        finish_signal.wait()
        return None

    sup.register(
        "db-client",
        connect,
        ProcessOption(
            retry_count=ATTEMPTS_BEFORE_READY,  # attempts in all, the first included
            retry_interval=0.05,  # the first wait
            recover_interval=0.05,  # (max_interval may not be below either interval)
            backoff_factor=2.0,  # each wait doubles...
            max_interval=0.3,  # ...up to this cap
            jitter=0.0,  # e.g. 0.1 adds up to 10% at random, so that clients spread out
            reset_after=60.0,  # a run of a minute before a drop starts over: fresh attempts
        ),
    )
    report = sup.run()  # start(), then wait for a shutdown: here, the one the process asks for
    print(f"report: {report.reason}; exit code {report.exit_code}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
