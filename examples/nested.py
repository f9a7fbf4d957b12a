"""Nested supervisors: a child supervisor runs as one process of its parent.

The child supervises ``fetcher``, a fatal process. In the child's first run the fetcher
fails twice and gives up, so the child shuts itself down; its ``as_process()`` function
returns a ``SupervisorFailed`` error, and the parent's policy retries the ``workers``
process. That starts the child afresh, with fresh counters, as an Erlang supervisor
restarts a child supervisor. In its second run the fetcher works; it asks the parent to
shut down, which stops the child gracefully too. Run it::

    python3 examples/nested.py
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "supervisor.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from supervisor import (  # noqa: E402
    ProcessOption,
    Supervisor,
    TerminateChannel,
)


def main() -> int:
    # The child's and the parent's warnings and errors, one line each.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "    log %(name)s [%(process_name)s]: %(message)s", defaults={"process_name": "-"}
        )
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    parent = Supervisor(logger=logging.getLogger("parent"))
    child = Supervisor(shutdown_timeout=1.0, logger=logging.getLogger("child"))
    runs = 0  # runs of the fetcher

    def fetcher(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        nonlocal runs
        runs += 1
        attempt = child.status()[name].attempt  # 1 again once the child starts afresh
        if runs <= 2:
            print(f"fetcher run {runs} (attempt {attempt}): the feed is down")
            return ConnectionError("the feed is down")
        print(f"fetcher run {runs} (attempt {attempt}): fetched; asking the parent to shut down")
        parent.shutdown()
        finish_signal.wait()  # the parent stops the child, which sets this
        print("fetcher: finish signal received, returning")
        return None

    def api(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait()  # a stand-in for a server that runs beside the workers
        return None

    # The child: fetcher is fatal (the default), so when it gives up the child stops.
    # reset_after: once the feed has worked for a minute, a later failure starts over
    # with fresh attempts (here every run fails at once, so the budget runs out).
    child.register(
        "fetcher", fetcher, ProcessOption(retry_count=2, retry_interval=0.05, reset_after=60.0)
    )

    # The parent: the child is one process; when it fails, the parent retries it.
    parent.register("api", api)
    parent.register("workers", child.as_process(), ProcessOption(retry_interval=0.1))

    report = parent.run()  # start(), then wait for a shutdown (Ctrl-C works too)

    status = parent.status()["workers"]
    print(f"parent report: {report.reason}; finished: {', '.join(report.finished)}")
    print(f"'workers' ran {status.restarts + 1} times; last error: {status.last_error}")
    print(f"exit code {report.exit_code}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
