"""A small service under supervision: an HTTP server, a periodic job and a flaky worker.

Run it from the repository root, then press Ctrl-C (or send SIGTERM) to stop it::

    python3 examples/demo.py                  # serves on a free port; the URL is logged
    python3 examples/demo.py --port 8080      # a fixed port
    python3 examples/demo.py --duration 5     # stops by itself after 5 seconds
    python3 examples/demo.py --stall 2        # the worker hangs for 2 s once: "stalled"

- ``http`` serves ``GET /`` (a JSON snapshot of :meth:`Supervisor.status`) and
  ``GET /healthz`` on 127.0.0.1, until its finish signal is set.
- ``stats`` is a periodic job: once a second it logs what the service has done.
- ``flaky-worker`` processes a job every 0.2 s. Now and then a job fails: one returns an
  error (the supervisor retries the worker after ``retry_interval``) and another raises
  (the supervisor recovers it after ``recover_interval``). The failed job succeeds the
  second time, so within three seconds the log shows a retry and a recovery.
  It beats: it calls ``heartbeat()`` after each job, and its ``heartbeat_timeout`` is
  1 s. With ``--stall SECONDS`` it hangs that long once (before job 2): after a second
  without a heartbeat the log says it stalled and where it is stuck, ``GET /`` shows it
  ``stalled``, and its next heartbeat logs that it resumed. A stalled thread is
  reported, not restarted (a thread cannot be killed); under systemd, the supervisor's
  ``WATCHDOG=1`` pings stop meanwhile (see docs/deployment.md).

The exit code is the report's: 0 when everything stopped gracefully (see README.md).
"""

from __future__ import annotations

import argparse
import http.server
import json
import logging
import sys
import threading
from pathlib import Path

# Prefer the supervisor.py of this repository (next to examples/) over any installed
# "supervisor" package: supervisord's package has the same import name.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "supervisor.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from supervisor import (  # noqa: E402
    ProcessFunc,
    ProcessOption,
    ShutdownReport,
    Supervisor,
    TerminateChannel,
    heartbeat,
)

JOB_INTERVAL = 0.2  # the flaky worker does one job this often
HEARTBEAT_TIMEOUT = 1.0  # the flaky worker is stalled after this long without a heartbeat
STATS_INTERVAL = 1.0  # the periodic job runs this often

log = logging.getLogger("demo")


# ---------------------------------------------------------------------------
# Logging for people: time, level, process name, then the structured fields.


class DemoFormatter(logging.Formatter):
    """Appends the supervisor's structured ``extra`` fields, such as ``attempt=2``."""

    FIELDS = ("attempt", "interval", "error", "reason", "signal", "number_of_unfinished_processes")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = "".join(
            f" {name}={_show(record.__dict__[name])}"
            for name in self.FIELDS
            if name in record.__dict__
        )
        return super().formatMessage(record) + fields


def _show(value: object) -> str:
    return repr(value) if isinstance(value, BaseException) else str(value)


def setup_logging() -> None:
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(
        DemoFormatter(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(process_name)-12s %(message)s",
            datefmt="%H:%M:%S",
            # The supervisor sets process_name on every message about one process; its
            # other messages (shutdown, report) have none and show "-".
            defaults={"process_name": "-"},
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def process_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose messages carry ``process_name``, like the supervisor's own."""
    return logging.LoggerAdapter(log, {"process_name": name})


# ---------------------------------------------------------------------------
# What the service does


class Counters:
    """Shared between the processes; the lock guards both counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs_done = 0
        self.requests_served = 0

    def job_done(self) -> None:
        with self.lock:
            self.jobs_done += 1

    def request_served(self) -> None:
        with self.lock:
            self.requests_served += 1

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.jobs_done, self.requests_served


def make_http_server(
    sup: Supervisor, counters: Counters, port: int
) -> ProcessFunc:
    """The ``http`` process: a ThreadingHTTPServer on 127.0.0.1 that stops on its finish signal."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                body = b"ok\n"
                content_type = "text/plain"
            elif self.path == "/":
                status = {
                    name: {
                        "state": s.state.value,
                        "attempt": s.attempt,
                        "restarts": s.restarts,
                        "last_error": s.last_error,
                    }
                    for name, s in sup.status().items()
                }
                body = json.dumps(status, indent=2).encode() + b"\n"
                content_type = "application/json"
            else:
                self.send_error(404)
                return
            counters.request_served()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            process_logger("http").info("%s " + format, self.client_address[0], *args)

    def http_server(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        plog = process_logger(name)
        # A bind error (say, the port is taken) raises: the supervisor recovers the process.
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
            host, bound_port = server.server_address[:2]
            plog.info("serving on http://%s:%d/", host, bound_port)
            # serve_forever() blocks this thread; a helper thread waits for the finish
            # signal and stops it (shutdown() must be called from another thread).
            # (If serve_forever() raises, this daemon thread lingers until the shutdown,
            # when its server.shutdown() returns at once.)
            stopper = threading.Thread(
                target=_shutdown_on,
                args=(finish_signal, server),
                name=f"{name}-stopper",
                daemon=True,
            )
            stopper.start()
            server.serve_forever(poll_interval=0.1)  # returns after server.shutdown()
            stopper.join()
        plog.info("HTTP server closed")
        return None

    return http_server


def _shutdown_on(finish_signal: threading.Event, server: http.server.HTTPServer) -> None:
    finish_signal.wait()
    server.shutdown()


def make_stats_job(
    sup: Supervisor, counters: Counters
) -> ProcessFunc:
    """The ``stats`` process: a periodic job. ``wait()`` on the finish signal is its sleep."""

    def stats(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        plog = process_logger(name)
        while not finish_signal.wait(STATS_INTERVAL):
            jobs, requests = counters.snapshot()
            worker = sup.status()["flaky-worker"]
            plog.info(
                "%d jobs done, %d HTTP requests served; flaky-worker is %s after %d %s",
                jobs,
                requests,
                worker.state.value,
                worker.restarts,
                "restart" if worker.restarts == 1 else "restarts",
            )
        return None

    return stats


class FlakyWorker:
    """The ``flaky-worker`` process: a job every JOB_INTERVAL; job 3, 11, 19... returns an
    error the first time it is tried, and job 6, 14, 22... raises the first time. It
    sends a heartbeat after each job; with ``stall``, it hangs that long once, before job 2."""

    def __init__(self, counters: Counters, stall: float | None = None) -> None:
        self.counters = counters
        self.next_job = 1  # only this process's thread touches these three
        self.failed_once: set[int] = set()
        self.stall = stall

    def __call__(
        self, finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        plog = process_logger(name)
        while not finish_signal.wait(JOB_INTERVAL):
            job = self.next_job
            if job == 2 and self.stall is not None:
                stall, self.stall = self.stall, None
                plog.info("job 2 hangs for %.1f s, without a heartbeat", stall)
                finish_signal.wait(stall)  # where the "stalled" log line says it is stuck
            if job not in self.failed_once:
                if job % 8 == 3:
                    self.failed_once.add(job)
                    # Returning an exception asks for a retry.
                    return TimeoutError(f"upstream did not answer for job {job}")
                if job % 8 == 6:
                    self.failed_once.add(job)
                    # Raising is a crash: the supervisor logs the traceback and recovers.
                    raise RuntimeError(f"job {job} hit a bug")
            retried = " (it failed before)" if job in self.failed_once else ""
            plog.info("job %d done%s", job, retried)
            self.counters.job_done()
            self.next_job += 1
            heartbeat()  # alive: a run silent for HEARTBEAT_TIMEOUT is stalled
        return None  # the finish signal is set: stop gracefully


# ---------------------------------------------------------------------------
# Wiring


def build(port: int, stall: float | None = None) -> Supervisor:
    sup = Supervisor(shutdown_timeout=5.0)
    counters = Counters()
    # The web server matters most: if it gives up, the whole service shuts down (exit 1).
    sup.register(
        "http",
        make_http_server(sup, counters, port),
        ProcessOption(recover_interval=1.0, is_fatal=True),
    )
    sup.register("stats", make_stats_job(sup, counters), ProcessOption(is_fatal=False))
    # The worker retries and recovers quickly. reset_after: a run of a second or more
    # has proven itself, so its counters start over and it never runs out of restarts;
    # is_fatal=False: should it give up (or stall) anyway, the rest of the service stays
    # up. heartbeat_timeout: a run without a heartbeat for a second is stalled.
    sup.register(
        "flaky-worker",
        FlakyWorker(counters, stall),
        ProcessOption(
            retry_interval=0.5,
            recover_interval=0.5,
            reset_after=1.0,
            is_fatal=False,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
        ),
    )
    return sup


def print_report(report: ShutdownReport) -> None:
    print(f"shutdown report: {report.reason}")
    print(f"  finished:   {', '.join(report.finished) or '-'}")
    print(f"  failed:     {', '.join(report.failed) or '-'}")
    print(f"  unfinished: {', '.join(report.unfinished) or '-'}")
    if report.cut_short:
        print("  (a second signal cut the wait short)")
    for name, stack in report.stacks.items():
        print(f"  {name} is stuck at:\n{stack}")
    print(f"  duration:   {report.duration:.3f} s")
    print(f"  exit code:  {report.exit_code}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--duration", type=float, default=None, help="shut down by itself after this many seconds"
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"the flaky worker hangs this long once, without a heartbeat (stalled after"
        f" {HEARTBEAT_TIMEOUT:g} s)",
    )
    args = parser.parse_args(argv)

    setup_logging()
    sup = build(args.port, args.stall)

    if args.duration is not None:
        timer = threading.Timer(args.duration, sup.shutdown)
        timer.daemon = True
        timer.start()

    log.info("starting; press Ctrl-C to stop")
    # run() installs the SIGINT and SIGTERM handlers, starts every process, waits for a
    # shutdown, carries it out, and restores the handlers.
    report = sup.run()
    print_report(report)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
