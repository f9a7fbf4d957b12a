"""The specification of supervisor.py, as tests.

Each test checks one behaviour and is named after it. The sections follow the issues:
the public API and defaults, then the eight rules of "Core" (errors and retries, panics
and recoveries, giving up, clean returns, shutdown, signals, bad input, logging and
threads), the shutdown report, and the eight features of "Beyond the seed" (backoff,
budget reset, restart control, run-time changes, status, events, ordered shutdown,
nested supervisors).

How the tests synchronise: processes and the ``on_event`` hook set ``threading.Event``s
or notify a ``threading.Condition``, and every wait has a bound (``BOUND``), so a bug
fails a test instead of hanging it. Waits between runs are a millisecond or zero; delays
are checked through the ``ProcessWaiting`` events that announce them, never by timing
sleeps. The only durations asserted are generous upper bounds. An autouse fixture checks
that no thread outlives its test; a process that hangs on purpose is released in a
``finally:`` block.

Signals are sent for real, with ``os.kill``, to a child Python process that runs a small
supervisor. Set ``SUPERVISOR_TEST_SWITCH_INTERVAL`` (for example to ``1e-6``) to run the
whole module with a tiny thread switch interval, which shakes out races.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import pytest

from supervisor import (
    DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
    EXIT_FATAL,
    EXIT_OK,
    EXIT_UNFINISHED,
    LOG_NS_SUPERVISOR,
    PROCESS_RECOVER_COUNT,
    PROCESS_RECOVER_INTERVAL,
    PROCESS_RETRY_COUNT,
    PROCESS_RETRY_INTERVAL,
    DoNotRestart,
    ProcessFailed,
    ProcessFunc,
    ProcessGaveUp,
    ProcessLifecycle,
    ProcessOption,
    ProcessStarted,
    ProcessStatus,
    ProcessStopped,
    ProcessWaiting,
    ShutdownCause,
    ShutdownFinished,
    ShutdownOrder,
    ShutdownReport,
    ShutdownStarted,
    Supervisor,
    SupervisorEvent,
    SupervisorFailed,
    TerminateChannel,
    TerminateSupervisor,
    UnknownProcessError,
)

_SWITCH_INTERVAL = os.environ.get("SUPERVISOR_TEST_SWITCH_INTERVAL")
if _SWITCH_INTERVAL:
    sys.setswitchinterval(float(_SWITCH_INTERVAL))

HERE = Path(__file__).resolve().parent

BOUND = 10.0
"""Upper bound of every wait in a test: reached only when something is broken."""
CHILD_BOUND = 30.0
"""Upper bound of a wait on a child process (starting Python on a loaded machine)."""
PROCESS_BOUND = 20.0
"""Upper bound of a wait inside a process (a process must never block forever)."""
GENEROUS = 10.0
"""A generous upper bound, in seconds, for something that should happen "at once"
(where the test's alternative outcome takes LONG)."""
LONG = 60.0
"""An interval that a test never waits out: if it is waited out, the test fails."""

FAST = ProcessOption(retry_interval=0.001, recover_interval=0.001)
"""Go's defaults with millisecond waits."""

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every thread a test starts has ended when it is over (after a short join)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    deadline = time.monotonic() + 5.0
    for thread in leftover:
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in leftover if thread.is_alive()]
    assert not alive, f"threads left behind: {alive}"


class EventLog:
    """An ``on_event`` hook that records every event and lets a test wait for some."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events: list[SupervisorEvent] = []

    def __call__(self, event: SupervisorEvent) -> None:
        with self._condition:
            self._events.append(event)
            self._condition.notify_all()

    @property
    def events(self) -> list[SupervisorEvent]:
        with self._condition:
            return list(self._events)

    def of(self, kind: type[T], name: str | None = None) -> list[T]:
        """The events of one type, optionally of one process, in order."""
        return _matching(self.events, kind, name)

    def wait_for(self, kind: type[T], name: str | None = None, count: int = 1) -> list[T]:
        """Wait until ``count`` events of that type (and process) have arrived."""
        with self._condition:
            arrived = self._condition.wait_for(
                lambda: len(_matching(self._events, kind, name)) >= count, BOUND
            )
            assert arrived, f"no {count} {kind.__name__} of {name!r} in {self._events}"
        return self.of(kind, name)


def _matching(events: Sequence[object], kind: type[T], name: str | None) -> list[T]:
    return [e for e in events if isinstance(e, kind) and (name is None or _process_of(e) == name)]


def _process_of(event: object) -> str | None:
    name = getattr(event, "process_name", None)
    return name if isinstance(name, str) else None


class RecordingHandler(logging.Handler):
    """A logging handler that keeps every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, process_name: str | None = None) -> list[str]:
        return [
            r.getMessage()
            for r in list(self.records)
            if process_name is None or extra(r, "process_name") == process_name
        ]

    def with_message(self, message: str) -> list[logging.LogRecord]:
        return [r for r in list(self.records) if r.getMessage() == message]


def extra(record: logging.LogRecord, field: str) -> object:
    """A structured field passed to the log call through ``extra``."""
    return record.__dict__.get(field)


@dataclasses.dataclass
class Harness:
    """A supervisor under test, with its event log and its log records."""

    sup: Supervisor
    events: EventLog
    logs: RecordingHandler
    logger: logging.Logger

    def stop(self) -> ShutdownReport:
        """Request a shutdown and wait for the report, as a signal would."""
        self.sup.shutdown()
        return self.sup.wait_on_shutdown_signal()


class Supervisors:
    """Creates supervisors for a test and shuts every one of them down after it."""

    def __init__(self, test_name: str) -> None:
        self._test_name = test_name
        self._made: list[Harness] = []

    def new(
        self,
        shutdown_timeout: float = BOUND,
        shutdown_order: ShutdownOrder = "parallel",
        on_event: Callable[[SupervisorEvent], object] | None = None,
    ) -> Harness:
        logger = logging.getLogger(f"tests.{self._test_name}.{len(self._made)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        handler = RecordingHandler()
        logger.addHandler(handler)
        events = EventLog()
        hook = events if on_event is None else on_event
        sup = Supervisor(shutdown_timeout, logger, on_event=hook, shutdown_order=shutdown_order)
        harness = Harness(sup, events, handler, logger)
        self._made.append(harness)
        return harness

    def close(self) -> None:
        for harness in reversed(self._made):
            harness.sup.shutdown()
            harness.sup.wait_on_shutdown_signal(handle_signals=False)
            for handler in list(harness.logger.handlers):
                harness.logger.removeHandler(handler)


@pytest.fixture
def supervisors(request: pytest.FixtureRequest) -> Iterator[Supervisors]:
    made = Supervisors(request.node.name)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def h(supervisors: Supervisors) -> Harness:
    """One supervisor (shutdown_timeout=BOUND) with an event log and a log handler."""
    return supervisors.new()


Outcome = Literal["return none", "return error", "raise", "wait for finish"]


class Scripted:
    """A process function that plays one outcome per run and counts its runs.

    After the script, every run plays ``then``. Returned errors are RuntimeErrors,
    raised ones ValueErrors, each naming the run. ``"wait for finish"`` waits on the
    finish signal and then returns None.
    """

    def __init__(self, *script: Outcome, then: Outcome = "wait for finish") -> None:
        self.script = script
        self.then = then
        self.runs = 0
        self.threads: list[threading.Thread] = []
        self.finish_signals: list[threading.Event] = []
        self._condition = threading.Condition()

    def __call__(
        self, finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        with self._condition:
            self.runs += 1
            run = self.runs
            self.threads.append(threading.current_thread())
            self.finish_signals.append(finish_signal)
            self._condition.notify_all()
        outcome = self.script[run - 1] if run <= len(self.script) else self.then
        if outcome == "return error":
            return RuntimeError(f"{process_name} error {run}")
        if outcome == "raise":
            raise ValueError(f"{process_name} crash {run}")
        if outcome == "wait for finish":
            finish_signal.wait(PROCESS_BOUND)
        return None

    def wait_runs(self, count: int) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: self.runs >= count, BOUND), (
                f"only {self.runs} runs, expected {count}"
            )


def until_finished(
    finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
) -> Exception | None:
    """A well-behaved process: it runs until its finish signal, then returns None."""
    finish_signal.wait(PROCESS_BOUND)
    return None


def wait_until(predicate: Callable[[], bool], timeout: float = BOUND) -> bool:
    """Poll for a condition that no event announces (only: signal handler installation)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def handler_replaced(before: object) -> Callable[[], bool]:
    """True once SIGTERM's handler is no longer ``before`` (wait_on_shutdown_signal's is in)."""
    return lambda: signal.getsignal(signal.SIGTERM) is not before


def current_wakeup_fd() -> int:
    """signal's wake-up fd, read by setting it back at once (there is no getter)."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def delays(events: EventLog, name: str) -> list[float]:
    return [event.delay for event in events.of(ProcessWaiting, name)]


# ---------------------------------------------------------------------------
# Public API and defaults


def test_constants_match_the_go_package() -> None:
    assert PROCESS_RETRY_COUNT == 3
    assert PROCESS_RETRY_INTERVAL == 3.0
    assert PROCESS_RECOVER_COUNT == 10
    assert PROCESS_RECOVER_INTERVAL == 2.0
    assert DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT == 5.0
    assert LOG_NS_SUPERVISOR == "supervisor"


def test_process_option_defaults_are_go_default_options() -> None:
    options = ProcessOption()
    assert options.recover is True
    assert options.recover_interval == 2.0
    assert options.recover_count == 10
    assert options.retry_count == 3
    assert options.retry_interval == 3.0
    assert options.is_fatal is True


def test_process_option_new_features_are_off_by_default() -> None:
    options = ProcessOption()
    assert options.backoff_factor == 1.0
    assert options.max_interval is None
    assert options.jitter == 0.0
    assert options.reset_after is None


def test_process_option_fields_not_given_keep_their_defaults() -> None:
    options = ProcessOption(retry_interval=0.5)
    assert options == dataclasses.replace(ProcessOption(), retry_interval=0.5)
    assert options.retry_count == PROCESS_RETRY_COUNT


def test_process_option_is_frozen() -> None:
    options = ProcessOption()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.retry_count = 5  # type: ignore[misc]


def test_exit_codes_are_0_ok_1_fatal_2_unfinished() -> None:
    assert (EXIT_OK, EXIT_FATAL, EXIT_UNFINISHED) == (0, 1, 2)


def test_zero_shutdown_timeout_means_the_default() -> None:
    logger = logging.getLogger("tests.zero_timeout")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = RecordingHandler()
    logger.addHandler(handler)
    try:
        sup = Supervisor(0, logger)
        sup.register("p", until_finished)
        sup.start()
        sup.shutdown()
        sup.wait_on_shutdown_signal()
    finally:
        logger.removeHandler(handler)
    (notify,) = handler.with_message("notify all processes (goroutines) to finish their jobs")
    assert extra(notify, "shutdown_timeout") == DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT


def test_shutdown_timeout_given_is_used(supervisors: Supervisors) -> None:
    harness = supervisors.new(shutdown_timeout=0.25)
    harness.sup.start()
    harness.stop()
    (notify,) = harness.logs.with_message("notify all processes (goroutines) to finish their jobs")
    assert extra(notify, "shutdown_timeout") == 0.25


def test_a_simple_queue_can_stand_in_for_the_terminate_channel() -> None:
    def announces(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        terminate_channel.put(process_name)
        return None

    channel: queue.SimpleQueue[str] = queue.SimpleQueue()
    process: ProcessFunc = announces
    assert process(threading.Event(), "unit", channel) is None
    assert channel.get_nowait() == "unit"


# ---------------------------------------------------------------------------
# Rule 1: a returned exception is an error, retried retry_count attempts in all


def test_error_is_retried_retry_count_times_in_all(h: Harness) -> None:
    process = Scripted(then="return error")
    h.sup.register("p", process, dataclasses.replace(FAST, retry_count=4, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == 4
    assert [e.attempt for e in h.events.of(ProcessStarted, "p")] == [1, 2, 3, 4]
    assert [e.panic for e in h.events.of(ProcessFailed, "p")] == [False] * 4


def test_retry_waits_retry_interval_between_attempts(h: Harness) -> None:
    options = ProcessOption(retry_interval=0.004, recover_interval=0.001, is_fatal=False)
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    waits = h.events.of(ProcessWaiting, "p")
    assert [(w.kind, w.delay) for w in waits] == [("retry", 0.004), ("retry", 0.004)]


def test_no_wait_after_the_last_attempt(h: Harness) -> None:
    h.sup.register("p", Scripted(then="return error"), dataclasses.replace(FAST, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    kinds = [type(e).__name__ for e in h.events.events if _process_of(e) == "p"]
    assert kinds == [
        "ProcessStarted", "ProcessFailed", "ProcessWaiting",
        "ProcessStarted", "ProcessFailed", "ProcessWaiting",
        "ProcessStarted", "ProcessFailed", "ProcessGaveUp",
    ]  # fmt: skip
    assert len(h.logs.with_message("wait to retry execute process after sleep interval")) == 2


def test_a_process_with_one_attempt_is_never_retried(h: Harness) -> None:
    process = Scripted(then="return error")
    h.sup.register("p", process, ProcessOption(retry_count=1, retry_interval=LONG, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == 1
    assert h.events.of(ProcessWaiting) == []


def test_success_after_errors_ends_the_retries(h: Harness) -> None:
    process = Scripted("return error", "return none", then="return error")
    h.sup.register("p", process, dataclasses.replace(FAST, is_fatal=False))
    h.sup.start()
    (stopped,) = h.events.wait_for(ProcessStopped, "p")
    assert stopped.state is ProcessLifecycle.FINISHED
    assert process.runs == 2
    assert h.events.of(ProcessGaveUp) == []


def test_one_thread_runs_every_attempt_of_a_process(h: Harness) -> None:
    process = Scripted("return error", "raise", "return error")
    h.sup.register("p", process, FAST)
    h.sup.start()
    process.wait_runs(4)
    assert len({thread.ident for thread in process.threads}) == 1


# ---------------------------------------------------------------------------
# Rule 2: a raised exception is a panic, recovered with a fresh retry budget


def test_panic_is_logged_with_its_traceback(h: Harness) -> None:
    h.sup.register("p", Scripted("raise"), FAST)
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p", count=2)
    (record,) = h.logs.with_message("recover from panic")
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    formatted = logging.Formatter().format(record)
    assert "Traceback (most recent call last)" in formatted
    assert "raise ValueError" in formatted


def test_panic_is_recovered_after_recover_interval(h: Harness) -> None:
    options = ProcessOption(recover_interval=0.003, retry_interval=0.001)
    process = Scripted("raise", "raise")
    h.sup.register("p", process, options)
    h.sup.start()
    process.wait_runs(3)
    waits = h.events.of(ProcessWaiting, "p")
    assert [(w.kind, w.delay) for w in waits] == [("recover", 0.003), ("recover", 0.003)]
    assert h.logs.messages("p").count("restart the process") == 2


def test_panic_recovery_gives_fresh_retry_budget(h: Harness) -> None:
    # Each budget: errors on every attempt but the last, which raises. So the process
    # runs (recover_count + 1) x retry_count times in all, as in Go.
    retry_count, recover_count = 3, 2
    per_budget: list[Outcome] = ["return error", "return error", "raise"]
    process = Scripted(*per_budget * (recover_count + 2))
    options = dataclasses.replace(
        FAST, retry_count=retry_count, recover_count=recover_count, is_fatal=False
    )
    h.sup.register("p", process, options)
    h.sup.start()
    (gave_up,) = h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == (recover_count + 1) * retry_count
    assert [e.attempt for e in h.events.of(ProcessStarted, "p")] == [1, 2, 3] * 3
    assert isinstance(gave_up.error, ValueError)


def test_recoveries_stop_after_recover_count(h: Harness) -> None:
    process = Scripted(then="raise")
    h.sup.register("p", process, dataclasses.replace(FAST, recover_count=4, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == 5
    assert len(h.events.of(ProcessWaiting, "p")) == 4
    assert h.logs.messages("p")[-1] == "don't try any more to restart the process"


def test_recover_count_zero_never_recovers(h: Harness) -> None:
    process = Scripted(then="raise")
    h.sup.register("p", process, dataclasses.replace(FAST, recover_count=0, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == 1


def test_recover_false_gives_up_after_the_first_panic(h: Harness) -> None:
    process = Scripted(then="raise")
    h.sup.register("p", process, dataclasses.replace(FAST, recover=False, is_fatal=False))
    h.sup.start()
    (gave_up,) = h.events.wait_for(ProcessGaveUp, "p")
    assert process.runs == 1
    assert isinstance(gave_up.error, ValueError)
    assert h.sup.status()["p"].state is ProcessLifecycle.FAILED


def test_returning_something_else_than_none_or_an_exception_is_a_panic(h: Harness) -> None:
    def returns_a_string(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        return "oops"  # type: ignore[return-value]

    h.sup.register("p", returns_a_string, dataclasses.replace(FAST, recover=False, is_fatal=False))
    h.sup.start()
    (failed,) = h.events.wait_for(ProcessFailed, "p")
    assert failed.panic
    assert isinstance(failed.error, TypeError)
    assert "'oops'" in str(failed.error)


# ---------------------------------------------------------------------------
# Rule 3: a process that gives up has ended; a fatal one shuts the supervisor down


def test_fatal_process_that_gives_up_shuts_down(h: Harness) -> None:
    h.sup.register("p", Scripted(then="return error"), FAST)
    h.sup.register("other", until_finished)
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.FATAL_PROCESS
    assert report.process_name == "p"
    assert isinstance(report.error, RuntimeError)
    assert report.exit_code == EXIT_FATAL
    assert h.sup.status()["p"].state is ProcessLifecycle.FAILED
    assert h.logs.with_message("can't recover important process. exit..")


def test_fatal_process_whose_recoveries_run_out_shuts_down(h: Harness) -> None:
    process = Scripted(then="raise")
    h.sup.register("p", process, dataclasses.replace(FAST, recover_count=2))
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert process.runs == 3
    assert report.cause is ShutdownCause.FATAL_PROCESS
    assert report.process_name == "p"
    assert isinstance(report.error, ValueError)
    assert report.exit_code == EXIT_FATAL


def test_fatal_process_that_panics_without_recover_shuts_down(h: Harness) -> None:
    h.sup.register("p", Scripted(then="raise"), dataclasses.replace(FAST, recover=False))
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.FATAL_PROCESS
    assert report.process_name == "p"
    assert report.exit_code == EXIT_FATAL


def test_non_fatal_process_that_gives_up_leaves_the_others_running(h: Harness) -> None:
    other = Scripted()
    h.sup.register("p", Scripted(then="return error"), dataclasses.replace(FAST, is_fatal=False))
    h.sup.register("other", other)
    h.sup.start()
    (gave_up,) = h.events.wait_for(ProcessGaveUp, "p")
    other.wait_runs(1)
    assert not gave_up.fatal
    status = h.sup.status()
    assert status["p"].state is ProcessLifecycle.FAILED
    assert status["other"].state is ProcessLifecycle.RUNNING
    assert h.events.of(ShutdownStarted) == []
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.exit_code == EXIT_OK


# ---------------------------------------------------------------------------
# Rule 4: a run that returns None before the shutdown has ended for good


def test_fatal_process_returning_none_shuts_down(h: Harness) -> None:
    process = Scripted("return none")
    h.sup.register("p", process, FAST)
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert process.runs == 1
    assert report.cause is ShutdownCause.FATAL_PROCESS
    assert report.process_name == "p"
    assert report.error is None
    assert "'p'" in report.reason
    assert report.exit_code == EXIT_FATAL
    assert h.logs.messages("p")[-2:] == [
        "process terminates with no error",
        "can't recover important process. exit..",
    ]


def test_non_fatal_process_returning_none_is_not_restarted(h: Harness) -> None:
    process = Scripted("return none", then="raise")
    h.sup.register("p", process, dataclasses.replace(FAST, is_fatal=False))
    h.sup.register("other", until_finished)
    h.sup.start()
    (stopped,) = h.events.wait_for(ProcessStopped, "p")
    assert stopped.state is ProcessLifecycle.FINISHED
    assert h.events.of(ShutdownStarted) == []
    report = h.stop()
    assert process.runs == 1
    assert report.exit_code == EXIT_OK


# ---------------------------------------------------------------------------
# Rule 5: shutdown


def test_shutdown_sets_every_finish_signal(h: Harness) -> None:
    processes = [Scripted() for _ in range(3)]
    for index, process in enumerate(processes):
        h.sup.register(f"p{index}", process)
    h.sup.start()
    for process in processes:
        process.wait_runs(1)
    h.sup.shutdown()
    for process in processes:
        assert process.finish_signals[0].wait(BOUND)
    report = h.sup.wait_on_shutdown_signal()
    assert report.finished == ("p0", "p1", "p2")


def test_shutdown_returns_as_soon_as_every_process_returned(supervisors: Supervisors) -> None:
    harness = supervisors.new(shutdown_timeout=LONG)
    for index in range(5):
        harness.sup.register(f"p{index}", until_finished)
    harness.sup.start()
    harness.events.wait_for(ProcessStarted, count=5)
    started = time.monotonic()
    report = harness.stop()
    assert time.monotonic() - started < GENEROUS  # not the 60 s timeout
    assert report.duration < GENEROUS
    assert report.unfinished == ()
    assert report.exit_code == EXIT_OK


def test_shutdown_waits_at_most_shutdown_timeout_for_a_hung_process(
    supervisors: Supervisors,
) -> None:
    harness = supervisors.new(shutdown_timeout=0.1)
    release = threading.Event()

    def hangs(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        release.wait(PROCESS_BOUND)
        return None

    try:
        harness.sup.register("hung", hangs)
        harness.sup.register("good", until_finished)
        harness.sup.start()
        harness.events.wait_for(ProcessStarted, count=2)
        report = harness.stop()
    finally:
        release.set()
    assert report.unfinished == ("hung",)
    assert report.finished == ("good",)
    assert report.duration < GENEROUS
    assert report.exit_code == EXIT_UNFINISHED


def test_report_and_log_name_where_a_hung_process_is_stuck(supervisors: Supervisors) -> None:
    harness = supervisors.new(shutdown_timeout=0.05)
    release = threading.Event()

    def stuck_in_here(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        release.wait(PROCESS_BOUND)
        return None

    try:
        harness.sup.register("hung", stuck_in_here)
        harness.sup.start()
        harness.events.wait_for(ProcessStarted, "hung")
        report = harness.stop()
    finally:
        release.set()
    assert set(report.stacks) == {"hung"}
    assert "stuck_in_here" in report.stacks["hung"]
    (logged,) = harness.logs.with_message("process did not finish in time")
    assert logged.levelno == logging.ERROR
    assert extra(logged, "process_name") == "hung"
    assert "stuck_in_here" in str(extra(logged, "stack"))
    (last,) = harness.logs.with_message("supervisor terminates its job.")
    assert extra(last, "number_of_unfinished_processes") == 1


def test_shutdown_interrupts_retry_wait_at_once(h: Harness) -> None:
    process = Scripted("return error")
    h.sup.register("p", process, ProcessOption(retry_interval=LONG, recover_interval=0.0))
    h.sup.start()
    h.events.wait_for(ProcessWaiting, "p")
    assert h.sup.status()["p"].state is ProcessLifecycle.WAITING_TO_RETRY
    report = h.stop()
    assert report.unfinished == ()
    assert report.duration < GENEROUS
    assert process.runs == 1
    assert h.sup.status()["p"].state is ProcessLifecycle.FINISHED


def test_shutdown_interrupts_recover_wait_at_once(h: Harness) -> None:
    process = Scripted("raise")
    h.sup.register("p", process, ProcessOption(recover_interval=LONG, retry_interval=0.0))
    h.sup.start()
    h.events.wait_for(ProcessWaiting, "p")
    assert h.sup.status()["p"].state is ProcessLifecycle.WAITING_TO_RECOVER
    report = h.stop()
    assert report.unfinished == ()
    assert report.duration < GENEROUS
    assert process.runs == 1


def test_no_retry_starts_after_shutdown(h: Harness) -> None:
    def fails_when_told_to_finish(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        return RuntimeError("lost my connection while stopping")

    h.sup.register("p", fails_when_told_to_finish, FAST)
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p")
    report = h.stop()
    assert len(h.events.of(ProcessStarted, "p")) == 1
    assert h.events.of(ProcessWaiting) == []
    (stopped,) = h.events.of(ProcessStopped, "p")
    assert stopped.state is ProcessLifecycle.FINISHED
    assert isinstance(stopped.error, RuntimeError)
    assert report.finished == ("p",)
    assert report.exit_code == EXIT_OK


def test_no_recovery_starts_after_shutdown(h: Harness) -> None:
    def crashes_when_told_to_finish(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        raise ValueError("crashed while stopping")

    h.sup.register("p", crashes_when_told_to_finish, FAST)
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p")
    report = h.stop()
    assert len(h.events.of(ProcessStarted, "p")) == 1
    assert h.events.of(ProcessWaiting) == []
    assert report.exit_code == EXIT_OK


def test_clean_return_during_shutdown_is_graceful_not_fatal(h: Harness) -> None:
    h.sup.register("fatal", until_finished, FAST)  # is_fatal=True
    h.sup.start()
    h.events.wait_for(ProcessStarted, "fatal")
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.exit_code == EXIT_OK
    assert h.logs.messages("fatal")[-1] == "process terminates gracefully"
    assert h.logs.with_message("can't recover important process. exit..") == []
    assert h.logs.with_message("process terminates with no error") == []
    (stopped,) = h.events.of(ProcessStopped, "fatal")
    assert stopped.state is ProcessLifecycle.FINISHED


def test_shutdown_is_idempotent_and_the_first_reason_wins(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    h.sup.shutdown()
    h.sup.shutdown()
    report = h.sup.wait_on_shutdown_signal()
    h.sup.shutdown()
    assert report.cause is ShutdownCause.REQUEST
    assert len(h.events.of(ShutdownStarted)) == 1
    assert len(h.logs.with_message("shutdown all processes gracefully")) == 1


def test_shutdown_from_many_threads_at_once_begins_one_shutdown(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    barrier = threading.Barrier(8)

    def calls_shutdown() -> None:
        barrier.wait(BOUND)
        h.sup.shutdown()

    threads = [threading.Thread(target=calls_shutdown) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    report = h.sup.wait_on_shutdown_signal()
    assert len(h.events.of(ShutdownStarted)) == 1
    assert report.finished == ("p",)


def test_shutdown_can_be_called_from_a_process(h: Harness) -> None:
    def stops_everything(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        h.sup.shutdown()
        finish_signal.wait(PROCESS_BOUND)
        return None

    h.sup.register("other", until_finished)
    h.sup.register("stopper", stops_everything)
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.REQUEST
    assert report.finished == ("other", "stopper")
    assert report.exit_code == EXIT_OK


def test_shutdown_before_start_starts_nothing(h: Harness) -> None:
    process = Scripted()
    h.sup.register("p", process)
    h.sup.shutdown()
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert process.runs == 0
    assert report.finished == ("p",)
    assert h.logs.with_message("supervisor is shutting down; no process started")


def test_terminate_channel_put_never_blocks(h: Harness) -> None:
    channels: list[TerminateChannel] = []
    done = threading.Event()

    def announces_a_thousand_times(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        channels.append(terminate_channel)
        for _ in range(1000):  # Go's channel holds 10; an 11th send would block
            terminate_channel.put(process_name)
        done.set()
        finish_signal.wait(PROCESS_BOUND)
        return None

    h.sup.register("p", announces_a_thousand_times)
    h.sup.start()
    assert done.wait(BOUND)
    report = h.stop()
    for _ in range(100):  # after the shutdown too
        channels[0].put("p")
    assert report.finished == ("p",)
    assert len(h.logs.with_message("process announced its termination")) == 1100


def test_return_is_noticed_with_or_without_the_terminate_channel(
    supervisors: Supervisors,
) -> None:
    h = supervisors.new(shutdown_timeout=LONG)

    def announces(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        terminate_channel.put(process_name)
        return None

    h.sup.register("announces", announces)
    h.sup.register("silent", until_finished)
    h.sup.start()
    h.events.wait_for(ProcessStarted, count=2)
    report = h.stop()
    assert report.finished == ("announces", "silent")
    assert report.duration < GENEROUS


def test_terminate_channel_warns_about_an_unknown_name(h: Harness) -> None:
    def announces_a_stranger(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        terminate_channel.put("stranger")
        finish_signal.wait(PROCESS_BOUND)
        return None

    h.sup.register("p", announces_a_stranger)
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p")
    h.stop()
    (warning,) = h.logs.with_message("process doesn't exist")
    assert warning.levelno == logging.WARNING
    assert extra(warning, "process_name") == "stranger"


# ---------------------------------------------------------------------------
# Rule 6: signals (for real, in a child Python process) and wait_on_shutdown_signal

CHILD_PRELUDE = """
import logging, signal, sys, threading, time
from supervisor import ProcessOption, Supervisor

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
running = threading.Semaphore(0)
say = logging.getLogger("child").warning  # one locked write per line, unlike print()

def cooperative(finish_signal, name, channel):
    running.release()
    finish_signal.wait()
    say(f"{name} got its finish signal")
    return None

def stubborn(finish_signal, name, channel):
    running.release()
    finish_signal.wait()
    say(f"{name} ignores its finish signal")
    threading.Event().wait()  # forever: only the daemon thread lets the program end

def announce_ready(count, before):
    def ready(finish_signal, name, channel):
        for _ in range(count):
            if not running.acquire(timeout=10):
                raise RuntimeError("processes did not start")
        # Polled: nothing announces that wait_on_shutdown_signal installed its handlers.
        deadline = time.monotonic() + 10
        while signal.getsignal(signal.SIGTERM) is before:
            if time.monotonic() > deadline:
                raise RuntimeError("signal handlers were not installed")
            time.sleep(0.001)
        say("ready")
        finish_signal.wait()
        return None
    return ready

def run(sup, count):
    sup.register("ready", announce_ready(count, signal.getsignal(signal.SIGTERM)))
    finish(sup)

def finish(sup):
    sup.start()
    report = sup.wait_on_shutdown_signal()
    say(
        f"report cause={report.cause.value} signal={report.signal_number}"
        f" exit_code={report.exit_code} finished={list(report.finished)}"
        f" unfinished={list(report.unfinished)}"
    )
    raise SystemExit(report.exit_code)
"""


class Child:
    """A child Python process running a supervisor script; its output is read bounded."""

    def __init__(self, script: str) -> None:
        paths = [str(HERE), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
        env.pop("SUPERVISOR_TEST_SWITCH_INTERVAL", None)
        source = CHILD_PRELUDE + textwrap.dedent(script)
        self.process = subprocess.Popen(
            [sys.executable, "-c", source],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=HERE,
        )
        assert self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        self._output = b""
        self._eof = False

    @property
    def output(self) -> str:
        return self._output.decode(errors="replace")

    def _read(self, deadline: float) -> bool:
        """Read what is there; False at the deadline or the end of the output."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self._eof:
            return False
        readable, _, _ = select.select([self._fd], [], [], remaining)
        if readable:
            chunk = os.read(self._fd, 65536)
            self._eof = not chunk
            self._output += chunk
        return True

    def expect(self, text: str, timeout: float = CHILD_BOUND) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self._read(deadline), f"no {text!r} from the child; it printed:\n{self.output}"

    def send(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def exit_code(self, timeout: float = CHILD_BOUND) -> int:
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        assert self._eof, f"the child did not end; it printed:\n{self.output}"
        return self.process.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(CHILD_BOUND)
        if self.process.stdout is not None:
            self.process.stdout.close()


def report_lists(output: str) -> tuple[list[str], list[str]]:
    """The finished and unfinished names from the child's "report ..." line."""
    match = re.search(r"report .* finished=\[(.*?)\] unfinished=\[(.*?)\]", output)
    assert match, f"no report line in:\n{output}"
    finished: list[str] = re.findall(r"'([^']*)'", match.group(1))
    unfinished: list[str] = re.findall(r"'([^']*)'", match.group(2))
    return finished, unfinished


@pytest.fixture
def child() -> Iterator[Callable[[str], Child]]:
    made: list[Child] = []

    def start(script: str) -> Child:
        made.append(Child(script))
        return made[-1]

    try:
        yield start
    finally:
        for each in made:
            each.close()


GRACEFUL_CHILD = """
sup = Supervisor(shutdown_timeout=60)
sup.register("web", cooperative)
sup.register("jobs", cooperative)
run(sup, 2)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_shuts_a_child_process_down_gracefully_with_exit_code_0(
    child: Callable[[str], Child], signum: signal.Signals
) -> None:
    proc = child(GRACEFUL_CHILD)
    proc.expect("ready")
    proc.send(signum)
    assert proc.exit_code() == EXIT_OK
    output = proc.output
    assert (
        f"report cause=signal signal={int(signum)} exit_code=0"
        " finished=['web', 'jobs', 'ready'] unfinished=[]"
    ) in output
    assert "shutdown all processes gracefully" in output
    assert "web got its finish signal" in output
    assert "jobs got its finish signal" in output
    assert "supervisor terminates its job." in output
    assert "Traceback" not in output


def test_second_sigint_ends_the_wait_at_once_with_exit_code_2(
    child: Callable[[str], Child],
) -> None:
    proc = child(
        """
        sup = Supervisor(shutdown_timeout=60)
        sup.register("stubborn", stubborn)
        sup.register("web", cooperative)
        run(sup, 2)
        """
    )
    proc.expect("ready")
    proc.send(signal.SIGINT)
    proc.expect("stubborn ignores its finish signal")
    proc.expect("web got its finish signal")
    second = time.monotonic()
    proc.send(signal.SIGINT)
    assert proc.exit_code() == EXIT_UNFINISHED
    assert time.monotonic() - second < CHILD_BOUND  # not the 60 s shutdown timeout
    output = proc.output
    assert "second signal received; stop waiting for processes" in output
    assert "process did not finish in time" in output
    # Whether "web" and "ready" had returned when the second signal came is a race;
    # "stubborn" certainly had not, and nobody is lost.
    finished, unfinished = report_lists(output)
    assert "stubborn" in unfinished
    assert sorted(finished + unfinished) == ["ready", "stubborn", "web"]


def test_fatal_process_in_a_child_process_gives_exit_code_1(
    child: Callable[[str], Child],
) -> None:
    proc = child(
        """
        def ends_at_once(finish_signal, name, channel):
            return None

        sup = Supervisor(shutdown_timeout=30)
        sup.register("web", cooperative)
        sup.register("batch", ends_at_once)
        finish(sup)
        """
    )
    assert proc.exit_code() == EXIT_FATAL
    assert "report cause=fatal process signal=None exit_code=1" in proc.output


def test_signal_during_the_wait_is_reported_in_process(h: Harness) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def sends_sigterm_to_its_own_program(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        if not wait_until(handler_replaced(before)):
            return RuntimeError("the supervisor's signal handlers were never installed")
        os.kill(os.getpid(), signal.SIGTERM)
        finish_signal.wait(PROCESS_BOUND)
        return None

    h.sup.register("p", sends_sigterm_to_its_own_program, FAST)
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.SIGNAL
    assert report.signal_number == signal.SIGTERM
    assert "SIGTERM" in report.reason
    assert report.exit_code == EXIT_OK


def test_previous_signal_handlers_are_restored(h: Harness) -> None:
    def mine(signum: int, frame: types.FrameType | None) -> None:
        raise AssertionError("the test's own handler must not run")

    original = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    during: dict[int, object] = {}

    def looks_at_the_handlers(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        if wait_until(lambda: signal.getsignal(signal.SIGTERM) is not mine):
            during.update({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
        h.sup.shutdown()
        return None

    try:
        signal.signal(signal.SIGINT, mine)
        signal.signal(signal.SIGTERM, mine)
        wakeup_fd = current_wakeup_fd()
        h.sup.register("p", looks_at_the_handlers, FAST)
        h.sup.start()
        h.sup.wait_on_shutdown_signal()
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
        assert current_wakeup_fd() == wakeup_fd
    finally:
        for sig, handler in original.items():
            signal.signal(sig, handler)
    assert set(during) == {signal.SIGINT, signal.SIGTERM}
    assert mine not in during.values()


def test_run_installs_the_signal_handlers_before_any_process_starts(h: Harness) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen_at_first_run: dict[int, object] = {}

    def looks_at_once(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        seen_at_first_run.update({sig: signal.getsignal(sig) for sig in before})
        h.sup.shutdown()
        return None

    h.sup.register("p", looks_at_once, FAST)
    report = h.sup.run()
    assert report.cause is ShutdownCause.REQUEST
    assert report.finished == ("p",)
    assert all(seen_at_first_run[sig] is not before[sig] for sig in before)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_run_off_the_main_thread_raises_unless_handle_signals_is_false(h: Harness) -> None:
    h.sup.register("p", until_finished)
    outcomes: list[object] = []

    def runs_twice() -> None:
        try:
            h.sup.run()
        except RuntimeError as exc:
            outcomes.append(exc)
        outcomes.append(h.sup.run(handle_signals=False))

    thread = threading.Thread(target=runs_twice)
    thread.start()
    h.events.wait_for(ProcessStarted, "p")
    h.sup.shutdown()
    thread.join(BOUND)
    assert not thread.is_alive()
    error, report = outcomes
    assert isinstance(error, RuntimeError)
    assert "main thread" in str(error)
    assert isinstance(report, ShutdownReport)
    assert report.finished == ("p",)


def test_wait_off_the_main_thread_raises_runtime_error(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    errors: list[BaseException] = []

    def waits() -> None:
        try:
            h.sup.wait_on_shutdown_signal()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=waits)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive()
    (error,) = errors
    assert "main thread" in str(error)
    assert "handle_signals=False" in str(error)


def test_wait_off_the_main_thread_works_without_signal_handling(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    reports: list[ShutdownReport] = []
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(
        target=lambda: reports.append(h.sup.wait_on_shutdown_signal(handle_signals=False))
    )
    thread.start()
    h.sup.shutdown()
    thread.join(BOUND)
    assert not thread.is_alive()
    (report,) = reports
    assert report.finished == ("p",)
    assert signal.getsignal(signal.SIGTERM) is before


def test_wait_before_start_raises(h: Harness) -> None:
    h.sup.register("p", until_finished)
    with pytest.raises(RuntimeError, match=r"call start\(\) before"):
        h.sup.wait_on_shutdown_signal()


def test_wait_again_returns_the_same_report(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    report = h.stop()
    assert h.sup.wait_on_shutdown_signal() is report


def test_second_waiter_raises_runtime_error(h: Harness) -> None:
    errors: list[BaseException] = []
    before = signal.getsignal(signal.SIGTERM)

    def tries_to_wait_too(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        if wait_until(handler_replaced(before)):
            try:
                h.sup.wait_on_shutdown_signal(handle_signals=False)
            except RuntimeError as exc:
                errors.append(exc)
        h.sup.shutdown()
        return None

    h.sup.register("p", tries_to_wait_too, FAST)
    h.sup.start()
    h.sup.wait_on_shutdown_signal()
    (error,) = errors
    assert "already waiting" in str(error)


# ---------------------------------------------------------------------------
# Rule 7: bad input raises at once, naming the problem (a few cases per path; the
# table of bad input lives with the fault tests)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("", ValueError, "must not be empty"),
        ("   ", ValueError, "must not be empty"),
        (None, TypeError, "must be a str"),
        (42, TypeError, "must be a str"),
    ],
)
def test_register_rejects_an_empty_or_non_str_name(
    h: Harness, name: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        h.sup.register(name, until_finished)  # type: ignore[arg-type]


def test_register_rejects_a_name_already_registered(h: Harness) -> None:
    h.sup.register("p", until_finished)
    with pytest.raises(ValueError, match="'p' is already registered"):
        h.sup.register("p", until_finished)


@pytest.mark.parametrize("process", [None, "until_finished", 42])
def test_register_rejects_a_process_that_is_not_callable(h: Harness, process: object) -> None:
    with pytest.raises(TypeError, match="'p' must be callable"):
        h.sup.register("p", process)  # type: ignore[arg-type]


def test_register_rejects_options_that_are_not_a_process_option(h: Harness) -> None:
    with pytest.raises(TypeError, match="must be a ProcessOption"):
        h.sup.register("p", until_finished, {"retry_count": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["retry_interval", "recover_interval"])
@pytest.mark.parametrize(
    ("value", "message"),
    [(-0.001, "must not be negative"), (math.inf, "must be finite"), (math.nan, "must be finite")],
)
def test_option_rejects_negative_or_non_finite_intervals(
    field: str, value: float, message: str
) -> None:
    with pytest.raises(ValueError, match=rf"ProcessOption\.{field} {message}"):
        ProcessOption(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["retry_count", "recover_count"])
@pytest.mark.parametrize("value", [True, 2.0, "3"])
def test_option_rejects_counts_that_are_not_ints(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"ProcessOption\.{field} must be an int"):
        ProcessOption(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("retry_count", 0), ("recover_count", -1)])
def test_option_rejects_counts_below_their_minimum(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"ProcessOption\.{field} must be >= {value + 1}"):
        ProcessOption(**{field: value})  # type: ignore[arg-type]


def test_option_accepts_the_minimum_counts() -> None:
    options = ProcessOption(retry_count=1, recover_count=0)
    assert (options.retry_count, options.recover_count) == (1, 0)


@pytest.mark.parametrize("value", [-1.0, math.inf, "5"])
def test_supervisor_rejects_a_bad_shutdown_timeout(value: object) -> None:
    with pytest.raises((TypeError, ValueError), match=r"Supervisor\.shutdown_timeout"):
        Supervisor(value)  # type: ignore[arg-type]


def test_start_twice_raises(h: Harness) -> None:
    h.sup.start()
    with pytest.raises(RuntimeError, match="already started"):
        h.sup.start()


def test_register_after_shutdown_began_raises(h: Harness) -> None:
    h.sup.start()
    h.sup.shutdown()
    with pytest.raises(RuntimeError, match="shutting down; cannot register 'late'"):
        h.sup.register("late", until_finished)
    assert "late" not in h.sup.status()


def test_register_after_start_starts_at_once(h: Harness) -> None:
    h.sup.register("first", until_finished)
    h.sup.start()
    late = Scripted()
    h.sup.register("late", late)
    late.wait_runs(1)
    assert h.sup.status()["late"].state is ProcessLifecycle.RUNNING
    assert h.stop().finished == ("first", "late")


# ---------------------------------------------------------------------------
# Rule 8: logging and threads


def test_default_logger_is_named_supervisor() -> None:
    logger = logging.getLogger(LOG_NS_SUPERVISOR)
    handler = RecordingHandler()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        sup = Supervisor(BOUND)
        sup.register("p", until_finished)
        sup.start()
        sup.shutdown()
        sup.wait_on_shutdown_signal()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    assert handler.records
    assert {record.name for record in handler.records} == {"supervisor"}


def test_logger_child_named_supervisor(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    h.stop()
    assert h.logs.records
    assert {record.name for record in h.logs.records} == {f"{h.logger.name}.supervisor"}


def test_log_records_carry_process_name_attempt_error_extras(h: Harness) -> None:
    process = Scripted("return error", "raise", "return error", "return error")
    h.sup.register("p", process, dataclasses.replace(FAST, is_fatal=False, retry_count=2))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    executes = h.logs.with_message("execute process")
    assert [(extra(r, "process_name"), extra(r, "attempt")) for r in executes] == [
        ("p", 1),
        ("p", 2),
        ("p", 1),
        ("p", 2),
    ]
    failures = h.logs.with_message("failed to execute process")
    assert [(extra(r, "attempt"), repr(extra(r, "error"))) for r in failures] == [
        (1, repr(RuntimeError("p error 1"))),
        (1, repr(RuntimeError("p error 3"))),
        (2, repr(RuntimeError("p error 4"))),
    ]
    assert {r.levelno for r in failures} == {logging.ERROR}
    (panic,) = h.logs.with_message("recover from panic")
    assert extra(panic, "process_name") == "p"
    assert extra(panic, "attempt") == 2
    assert repr(extra(panic, "error")) == repr(ValueError("p crash 2"))


def test_log_messages_mirror_the_go_ones(h: Harness) -> None:
    h.sup.register(
        "p", Scripted("raise", then="return error"), dataclasses.replace(FAST, retry_count=2)
    )
    h.sup.start()
    h.sup.wait_on_shutdown_signal()
    assert h.logs.messages() == [
        "execute process",
        "recover from panic",
        "restart the process",
        "execute process",
        "failed to execute process",
        "wait to retry execute process after sleep interval",
        "execute process",
        "failed to execute process",
        "don't try any more to execute process",
        "can't recover important process. exit..",
        "shutdown all processes gracefully",
        "notify all processes (goroutines) to finish their jobs",
        "supervisor terminates its job.",
    ]


def test_threads_are_named_after_processes_and_daemons(h: Harness) -> None:
    first, second = Scripted(), Scripted()
    h.sup.register("first", first)
    h.sup.register("second", second)
    h.sup.start()
    first.wait_runs(1)
    second.wait_runs(1)
    assert [(t.name, t.daemon) for t in first.threads + second.threads] == [
        ("first", True),
        ("second", True),
    ]
    assert h.sup.status()["first"].thread_name == "first"


# ---------------------------------------------------------------------------
# The shutdown report


def test_report_of_a_requested_shutdown(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.reason == "shutdown() was called"
    assert (report.process_name, report.signal_number, report.error) == (None, None, None)
    assert report.finished == ("p",)
    assert report.unfinished == ()
    assert report.stacks == {}
    assert 0 <= report.duration < GENEROUS
    assert report.exit_code == EXIT_OK


def test_report_lists_processes_that_ended_before_the_shutdown_as_finished(h: Harness) -> None:
    h.sup.register("running", until_finished)
    h.sup.register("done", Scripted("return none"), dataclasses.replace(FAST, is_fatal=False))
    h.sup.register(
        "failed", Scripted(then="raise"), dataclasses.replace(FAST, recover=False, is_fatal=False)
    )
    h.sup.start()
    h.events.wait_for(ProcessStopped, "done")
    h.events.wait_for(ProcessGaveUp, "failed")
    report = h.stop()
    assert report.finished == ("running", "done", "failed")  # in registration order
    assert report.unfinished == ()


def test_exit_code_is_fatal_even_when_a_process_did_not_finish(supervisors: Supervisors) -> None:
    harness = supervisors.new(shutdown_timeout=0.05)
    release = threading.Event()

    def hangs(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        release.wait(PROCESS_BOUND)
        return None

    try:
        harness.sup.register("hung", hangs, FAST)
        harness.sup.register("fatal", Scripted("return none"), FAST)
        harness.sup.start()
        report = harness.sup.wait_on_shutdown_signal()
    finally:
        release.set()
    assert report.unfinished == ("hung",)
    assert report.exit_code == EXIT_FATAL


def test_report_is_frozen(h: Harness) -> None:
    h.sup.start()
    report = h.stop()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.exit_code = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.stacks["x"] = "y"  # type: ignore[index]


# ---------------------------------------------------------------------------
# Beyond the seed 1: backoff, cap and jitter (delays read from ProcessWaiting events)


def test_default_backoff_keeps_fixed_intervals(h: Harness) -> None:
    options = ProcessOption(retry_interval=0.002, recover_interval=0.001, retry_count=5)
    h.sup.register("p", Scripted(then="return error"), dataclasses.replace(options, is_fatal=False))
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert delays(h.events, "p") == [0.002] * 4


def test_backoff_factor_multiplies_each_consecutive_retry_wait(h: Harness) -> None:
    options = dataclasses.replace(FAST, backoff_factor=2.0, retry_count=5, is_fatal=False)
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert delays(h.events, "p") == pytest.approx([0.001, 0.002, 0.004, 0.008])


def test_backoff_applies_to_recover_waits(h: Harness) -> None:
    options = dataclasses.replace(FAST, backoff_factor=3.0, recover_count=3, is_fatal=False)
    h.sup.register("p", Scripted(then="raise"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    waits = h.events.of(ProcessWaiting, "p")
    assert [w.kind for w in waits] == ["recover"] * 3
    assert [w.delay for w in waits] == pytest.approx([0.001, 0.003, 0.009])


def test_backoff_counts_retry_and_recover_waits_alike(h: Harness) -> None:
    options = dataclasses.replace(FAST, backoff_factor=2.0, is_fatal=False)
    h.sup.register("p", Scripted("return error", "raise", "return error", "return none"), options)
    h.sup.start()
    h.events.wait_for(ProcessStopped, "p")
    waits = h.events.of(ProcessWaiting, "p")
    assert [w.kind for w in waits] == ["retry", "recover", "retry"]
    assert [w.delay for w in waits] == pytest.approx([0.001, 0.002, 0.004])


def test_max_interval_caps_every_wait(h: Harness) -> None:
    options = dataclasses.replace(
        FAST, backoff_factor=2.0, max_interval=0.003, retry_count=6, is_fatal=False
    )
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert delays(h.events, "p") == pytest.approx([0.001, 0.002, 0.003, 0.003, 0.003])


def test_jitter_lengthens_each_wait_by_at_most_its_fraction(h: Harness) -> None:
    options = dataclasses.replace(
        FAST, backoff_factor=2.0, jitter=0.5, retry_count=6, is_fatal=False
    )
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    for index, delay in enumerate(delays(h.events, "p")):
        base = 0.001 * 2.0**index
        assert base <= delay <= base * 1.5


def test_jitter_is_drawn_for_each_wait(h: Harness) -> None:
    options = dataclasses.replace(FAST, jitter=1.0, retry_count=11, is_fatal=False)
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    drawn = delays(h.events, "p")
    assert len(drawn) == 10
    assert len(set(drawn)) > 1  # ten equal draws from random.random(): not in this universe


def test_jitter_is_applied_before_the_cap(h: Harness) -> None:
    # The base delay already equals the cap: any jitter applied after the cap would
    # show above it.
    options = ProcessOption(
        retry_interval=0.004,
        recover_interval=0.001,
        max_interval=0.004,
        jitter=1.0,
        retry_count=8,
        is_fatal=False,
    )
    h.sup.register("p", Scripted(then="return error"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert delays(h.events, "p") == [0.004] * 7


@pytest.mark.parametrize("value", [0.5, 0.0, -2.0, math.inf, math.nan])
def test_backoff_factor_below_1_or_not_finite_raises(value: float) -> None:
    with pytest.raises(ValueError, match=r"ProcessOption\.backoff_factor"):
        ProcessOption(backoff_factor=value)


@pytest.mark.parametrize("value", [-0.1, 1.01, math.nan])
def test_jitter_outside_0_to_1_raises(value: float) -> None:
    with pytest.raises(ValueError, match=r"ProcessOption\.jitter"):
        ProcessOption(jitter=value)


@pytest.mark.parametrize(("retry_interval", "recover_interval"), [(0.5, 0.1), (0.1, 0.5)])
def test_max_interval_below_a_base_interval_raises(
    retry_interval: float, recover_interval: float
) -> None:
    with pytest.raises(ValueError, match=r"ProcessOption\.max_interval must not be below"):
        ProcessOption(
            retry_interval=retry_interval, recover_interval=recover_interval, max_interval=0.2
        )


# ---------------------------------------------------------------------------
# Beyond the seed 2: reset_after, a fresh budget after a stable run

STABLE = 0.1
"""reset_after in these tests: a "stable" run waits a bit longer than this."""


def stable_then(
    outcome: Literal["return error", "raise"], stable_runs: Sequence[int]
) -> ProcessFunc:
    """A process that fails at once, except on the given runs, which last > STABLE first."""
    runs: list[int] = []

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        runs.append(len(runs) + 1)
        if len(runs) in stable_runs and finish_signal.wait(STABLE * 1.2):
            return None
        if outcome == "raise":
            raise ValueError(f"crash {len(runs)}")
        return RuntimeError(f"error {len(runs)}")

    return process


def test_stable_run_resets_the_retry_budget(h: Harness) -> None:
    options = dataclasses.replace(FAST, reset_after=STABLE, retry_count=3, is_fatal=False)
    h.sup.register("p", stable_then("return error", stable_runs=[2]), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    # Run 2 lasted long enough: it is attempt 1 of a fresh budget, so runs 3 and 4 follow.
    assert [e.attempt for e in h.events.of(ProcessStarted, "p")] == [1, 2, 2, 3]


def test_stable_run_resets_the_recover_count(h: Harness) -> None:
    options = dataclasses.replace(FAST, reset_after=STABLE, recover_count=1, is_fatal=False)
    h.sup.register("p", stable_then("raise", stable_runs=[2]), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert len(h.events.of(ProcessStarted, "p")) == 3  # without the reset: 2
    assert h.sup.status()["p"].recovered_num == 1


def test_stable_run_resets_the_backoff(h: Harness) -> None:
    options = dataclasses.replace(
        FAST, reset_after=STABLE, backoff_factor=2.0, retry_count=3, is_fatal=False
    )
    h.sup.register("p", stable_then("return error", stable_runs=[3]), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    # Waits after runs 1, 2 grow; run 3 was stable: the backoff starts over.
    assert delays(h.events, "p") == pytest.approx([0.001, 0.002, 0.001, 0.002])


def test_without_reset_after_a_long_run_counts_as_usual(h: Harness) -> None:
    options = dataclasses.replace(FAST, retry_count=2, is_fatal=False)
    h.sup.register("p", stable_then("return error", stable_runs=[1]), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert [e.attempt for e in h.events.of(ProcessStarted, "p")] == [1, 2]


@pytest.mark.parametrize(
    ("value", "error"), [(-1.0, ValueError), (math.inf, ValueError), ("1", TypeError)]
)
def test_bad_reset_after_raises(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"ProcessOption\.reset_after"):
        ProcessOption(reset_after=value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Beyond the seed 3: DoNotRestart and TerminateSupervisor, raised or returned

How = Literal["raised", "returned"]


def ends_with(error: Exception, how: How) -> ProcessFunc:
    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        if how == "raised":
            raise error
        return error

    return process


@pytest.mark.parametrize("how", ["raised", "returned"])
def test_do_not_restart_ends_the_process_without_restart_or_shutdown(h: Harness, how: How) -> None:
    h.sup.register("p", ends_with(DoNotRestart("done for good"), how), FAST)  # is_fatal=True
    h.sup.register("other", until_finished)
    h.sup.start()
    (stopped,) = h.events.wait_for(ProcessStopped, "p")
    h.events.wait_for(ProcessStarted, "other")
    assert stopped.state is ProcessLifecycle.FINISHED
    assert isinstance(stopped.error, DoNotRestart)
    status = h.sup.status()
    assert status["p"].last_error == repr(DoNotRestart("done for good"))
    assert status["other"].state is ProcessLifecycle.RUNNING
    report = h.stop()
    assert len(h.events.of(ProcessStarted, "p")) == 1
    assert h.events.of(ProcessGaveUp) == []
    assert report.cause is ShutdownCause.REQUEST
    assert report.exit_code == EXIT_OK
    assert h.logs.with_message("process asked not to be restarted")


@pytest.mark.parametrize("how", ["raised", "returned"])
def test_terminate_supervisor_shuts_down_whatever_the_options_say(h: Harness, how: How) -> None:
    options = ProcessOption(is_fatal=False, recover=True, retry_count=5, retry_interval=LONG)
    h.sup.register("other", until_finished)
    h.sup.register("p", ends_with(TerminateSupervisor("maintenance"), how), options)
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.TERMINATE_REQUESTED
    assert report.process_name == "p"
    assert isinstance(report.error, TerminateSupervisor)
    assert "'p'" in report.reason
    assert "maintenance" in report.reason
    assert report.exit_code == EXIT_FATAL
    assert report.finished == ("other", "p")
    assert len(h.events.of(ProcessStarted, "p")) == 1


# ---------------------------------------------------------------------------
# Beyond the seed 4: remove() and registering a name again


def test_remove_stops_the_process_and_says_it_returned(h: Harness) -> None:
    process = Scripted()
    h.sup.register("p", process)
    h.sup.start()
    process.wait_runs(1)
    assert h.sup.remove("p", timeout=BOUND) is True
    assert h.sup.status()["p"].state is ProcessLifecycle.REMOVED
    (stopped,) = h.events.of(ProcessStopped, "p")
    assert stopped.state is ProcessLifecycle.REMOVED
    assert process.runs == 1


def test_remove_sets_only_that_process_finish_signal(h: Harness) -> None:
    removed, kept = Scripted(), Scripted()
    h.sup.register("removed", removed)
    h.sup.register("kept", kept)
    h.sup.start()
    removed.wait_runs(1)
    kept.wait_runs(1)
    assert h.sup.remove("removed", timeout=BOUND)
    assert not kept.finish_signals[0].is_set()
    assert h.sup.status()["kept"].state is ProcessLifecycle.RUNNING


def test_remove_during_a_retry_wait(h: Harness) -> None:
    process = Scripted("return error")
    h.sup.register("p", process, ProcessOption(retry_interval=LONG))
    h.sup.start()
    h.events.wait_for(ProcessWaiting, "p")
    started = time.monotonic()
    assert h.sup.remove("p", timeout=BOUND) is True
    assert time.monotonic() - started < GENEROUS
    assert process.runs == 1
    assert h.sup.status()["p"].state is ProcessLifecycle.REMOVED


def test_remove_of_a_fatal_process_does_not_shut_down(h: Harness) -> None:
    h.sup.register("fatal", until_finished, FAST)  # is_fatal=True
    h.sup.register("other", until_finished)
    h.sup.start()
    h.events.wait_for(ProcessStarted, count=2)
    assert h.sup.remove("fatal", timeout=BOUND)
    assert h.events.of(ShutdownStarted) == []
    assert h.logs.with_message("can't recover important process. exit..") == []
    assert h.sup.status()["other"].state is ProcessLifecycle.RUNNING
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.exit_code == EXIT_OK
    assert report.finished == ("fatal", "other")


def test_remove_says_false_when_the_process_does_not_return_in_time(h: Harness) -> None:
    release = threading.Event()

    def hangs(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        release.wait(PROCESS_BOUND)
        return None

    try:
        h.sup.register("hung", hangs, FAST)
        h.sup.start()
        h.events.wait_for(ProcessStarted, "hung")
        assert h.sup.remove("hung", timeout=0.02) is False
        with pytest.raises(ValueError, match="already registered"):
            h.sup.register("hung", until_finished)  # its function has not returned yet
    finally:
        release.set()
    (stopped,) = h.events.wait_for(ProcessStopped, "hung")
    assert stopped.state is ProcessLifecycle.REMOVED


def test_removed_name_can_be_registered_again(h: Harness) -> None:
    old, new = Scripted(), Scripted()
    h.sup.register("p", old)
    h.sup.register("other", until_finished)
    h.sup.start()
    old.wait_runs(1)
    assert h.sup.remove("p", timeout=BOUND)
    h.sup.register("p", new)
    new.wait_runs(1)
    status = h.sup.status()["p"]
    assert status.state is ProcessLifecycle.RUNNING
    assert (status.attempt, status.restarts) == (1, 0)
    assert old.runs == 1
    report = h.stop()
    assert report.finished == ("other", "p")  # a registered-again name goes last


def test_remove_before_start_keeps_the_process_from_running(h: Harness) -> None:
    process = Scripted()
    h.sup.register("p", process)
    assert h.sup.remove("p") is True
    h.sup.start()
    report = h.stop()
    assert process.runs == 0
    assert report.finished == ("p",)
    assert h.sup.status()["p"].state is ProcessLifecycle.REMOVED


def test_remove_called_by_the_process_itself_cannot_wait(h: Harness) -> None:
    answers: list[bool] = []

    def removes_itself(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        answers.append(h.sup.remove(process_name))
        assert finish_signal.is_set()
        return None

    h.sup.register("p", removes_itself, FAST)
    h.sup.register("other", until_finished)
    h.sup.start()
    (stopped,) = h.events.wait_for(ProcessStopped, "p")
    assert answers == [False]
    assert stopped.state is ProcessLifecycle.REMOVED
    assert h.events.of(ShutdownStarted) == []


def test_remove_of_an_unknown_name_raises(h: Harness) -> None:
    with pytest.raises(UnknownProcessError, match="'ghost'"):
        h.sup.remove("ghost")
    assert issubclass(UnknownProcessError, KeyError)
    assert issubclass(UnknownProcessError, ValueError)


def test_remove_twice_raises(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    assert h.sup.remove("p", timeout=BOUND)
    with pytest.raises(UnknownProcessError, match="'p'"):
        h.sup.remove("p")


def test_remove_with_a_bad_timeout_raises(h: Harness) -> None:
    h.sup.register("p", until_finished)
    with pytest.raises(ValueError, match="timeout must not be negative"):
        h.sup.remove("p", timeout=-1.0)


# ---------------------------------------------------------------------------
# Beyond the seed 5: status()


def test_status_before_start(h: Harness) -> None:
    before = time.monotonic()
    h.sup.register("p", until_finished)
    status = h.sup.status()
    assert list(status) == ["p"]
    assert status["p"] == ProcessStatus(
        name="p",
        state=ProcessLifecycle.REGISTERED,
        attempt=0,
        recovered_num=0,
        restarts=0,
        last_error=None,
        since=status["p"].since,
        thread_name=None,
    )
    assert before <= status["p"].since <= time.monotonic()


def test_status_of_a_running_process(h: Harness) -> None:
    process = Scripted()
    h.sup.register("p", process)
    before = time.monotonic()
    h.sup.start()
    process.wait_runs(1)
    status = h.sup.status()["p"]
    assert status.state is ProcessLifecycle.RUNNING
    assert (status.attempt, status.recovered_num, status.restarts) == (1, 0, 0)
    assert status.last_error is None
    assert status.thread_name == "p"
    assert before <= status.since <= time.monotonic()


def test_status_while_waiting_to_retry(h: Harness) -> None:
    failed_at: list[float] = []

    def fails_once(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        failed_at.append(time.monotonic())
        return RuntimeError("no connection")

    h.sup.register("p", fails_once, ProcessOption(retry_interval=LONG))
    h.sup.start()
    h.events.wait_for(ProcessWaiting, "p")
    status = h.sup.status()["p"]
    assert status.state is ProcessLifecycle.WAITING_TO_RETRY
    assert (status.attempt, status.recovered_num, status.restarts) == (1, 0, 0)
    assert status.last_error == repr(RuntimeError("no connection"))
    assert failed_at[0] <= status.since <= time.monotonic()


def test_status_counts_attempts_restarts_and_the_last_error(h: Harness) -> None:
    h.sup.register(
        "p", Scripted("return error", "return error"), ProcessOption(retry_interval=0.001)
    )
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p", count=3)
    status = h.sup.status()["p"]
    assert status.state is ProcessLifecycle.RUNNING
    assert (status.attempt, status.restarts) == (3, 2)
    assert status.last_error == repr(RuntimeError("p error 2"))


def test_status_while_waiting_to_recover(h: Harness) -> None:
    h.sup.register("p", Scripted("raise"), ProcessOption(recover_interval=LONG))
    h.sup.start()
    h.events.wait_for(ProcessWaiting, "p")
    status = h.sup.status()["p"]
    assert status.state is ProcessLifecycle.WAITING_TO_RECOVER
    assert (status.attempt, status.recovered_num, status.restarts) == (1, 1, 0)
    assert status.last_error == repr(ValueError("p crash 1"))


def test_status_of_ended_processes(h: Harness) -> None:
    quiet = dataclasses.replace(FAST, is_fatal=False)
    h.sup.register("finished", Scripted("return none"), quiet)
    h.sup.register(
        "failed", Scripted(then="return error"), dataclasses.replace(quiet, retry_count=1)
    )
    h.sup.register("removed", until_finished)
    h.sup.start()
    h.events.wait_for(ProcessStopped, "finished")
    h.events.wait_for(ProcessGaveUp, "failed")
    assert h.sup.remove("removed", timeout=BOUND)
    states = {name: s.state for name, s in h.sup.status().items()}
    assert states == {
        "finished": ProcessLifecycle.FINISHED,
        "failed": ProcessLifecycle.FAILED,
        "removed": ProcessLifecycle.REMOVED,
    }
    assert h.sup.status()["failed"].last_error == repr(RuntimeError("failed error 1"))


def test_status_counts_every_restart(h: Harness) -> None:
    process = Scripted("return error", "raise", "return error", "raise")
    h.sup.register("p", process, FAST)
    h.sup.start()
    process.wait_runs(5)
    status = h.sup.status()["p"]
    assert status.restarts == 4
    assert status.recovered_num == 2
    assert status.attempt == 1  # a fresh retry budget after the second recovery


def test_status_is_a_snapshot(h: Harness) -> None:
    process = Scripted()
    h.sup.register("p", process)
    h.sup.start()
    process.wait_runs(1)
    snapshot = h.sup.status()
    h.stop()
    assert snapshot["p"].state is ProcessLifecycle.RUNNING
    assert h.sup.status()["p"].state is ProcessLifecycle.FINISHED
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot["p"].attempt = 9  # type: ignore[misc]


def test_lifecycle_states_are_an_enum_with_these_members() -> None:
    assert {state.name for state in ProcessLifecycle} == {
        "REGISTERED",
        "RUNNING",
        "WAITING_TO_RETRY",
        "WAITING_TO_RECOVER",
        "FINISHED",
        "FAILED",
        "REMOVED",
    }


# ---------------------------------------------------------------------------
# Beyond the seed 6: events


def test_events_of_a_retry_a_recovery_and_a_stop_in_order(h: Harness) -> None:
    h.sup.register(
        "p",
        Scripted("return error", "raise", "return none"),
        dataclasses.replace(FAST, is_fatal=False),
    )
    h.sup.start()
    h.events.wait_for(ProcessStopped, "p")
    report = h.stop()
    events = h.events.events
    error, crash = events[1], events[4]
    assert isinstance(error, ProcessFailed)
    assert isinstance(crash, ProcessFailed)
    assert events == [
        ProcessStarted("p", 1),
        ProcessFailed("p", 1, error.error, panic=False),
        ProcessWaiting("p", 0.001, "retry"),
        ProcessStarted("p", 2),
        ProcessFailed("p", 2, crash.error, panic=True),
        ProcessWaiting("p", 0.001, "recover"),
        ProcessStarted("p", 1),
        ProcessStopped("p", ProcessLifecycle.FINISHED, None),
        ShutdownStarted("shutdown() was called", ShutdownCause.REQUEST),
        ShutdownFinished(report),
    ]
    assert repr(error.error) == repr(RuntimeError("p error 1"))
    assert repr(crash.error) == repr(ValueError("p crash 2"))


def test_events_of_a_fatal_give_up_and_its_shutdown_in_order(h: Harness) -> None:
    h.sup.register("p", Scripted(then="return error"), dataclasses.replace(FAST, retry_count=1))
    h.sup.start()
    report = h.sup.wait_on_shutdown_signal()
    kinds = [type(e) for e in h.events.events]
    assert kinds == [
        ProcessStarted,
        ProcessFailed,
        ProcessGaveUp,
        ShutdownStarted,
        ShutdownFinished,
    ]
    gave_up, started, finished = h.events.events[2], h.events.events[3], h.events.events[4]
    assert isinstance(gave_up, ProcessGaveUp)
    assert gave_up.fatal
    assert isinstance(started, ShutdownStarted)
    assert started.cause is ShutdownCause.FATAL_PROCESS
    assert started.reason == report.reason
    assert finished == ShutdownFinished(report)


def test_events_of_a_process_stopped_by_the_shutdown(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    h.events.wait_for(ProcessStarted, "p")
    h.stop()
    assert h.events.of(ProcessStopped) == [ProcessStopped("p", ProcessLifecycle.FINISHED, None)]


def test_events_are_frozen_dataclasses() -> None:
    event = ProcessStarted("p", 1)
    assert dataclasses.is_dataclass(event)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempt = 2  # type: ignore[misc]


def test_event_hook_is_called_outside_the_lock(supervisors: Supervisors) -> None:
    # status() takes the supervisor's lock: a hook called under it would deadlock.
    seen: list[Sequence[ProcessLifecycle]] = []
    holder: list[Supervisor] = []

    def hook(event: SupervisorEvent) -> None:
        seen.append([s.state for s in holder[0].status().values()])
        harness.events(event)

    harness = supervisors.new(on_event=hook)
    holder.append(harness.sup)
    harness.sup.register("p", Scripted("return error", "raise"), FAST)
    harness.sup.start()
    harness.events.wait_for(ProcessStarted, "p", count=3)
    harness.stop()
    assert len(seen) == len(harness.events.events) >= 8


def test_exception_in_the_event_hook_is_logged_and_ignored(supervisors: Supervisors) -> None:
    calls: list[SupervisorEvent] = []

    def broken_hook(event: SupervisorEvent) -> None:
        calls.append(event)
        raise RuntimeError("the hook is broken")

    harness = supervisors.new(on_event=broken_hook)
    process = Scripted("return error", "raise", "return none")
    harness.sup.register("p", process, dataclasses.replace(FAST, is_fatal=False))
    harness.sup.register("other", until_finished)
    harness.sup.start()
    process.wait_runs(3)
    report = harness.stop()
    assert process.runs == 3
    assert report.finished == ("p", "other")
    assert report.exit_code == EXIT_OK
    failures = harness.logs.with_message("event hook failed")
    assert len(failures) == len(calls) >= 10
    assert all(r.exc_info is not None and r.levelno == logging.ERROR for r in failures)


def test_a_bad_event_hook_raises() -> None:
    with pytest.raises(TypeError, match=r"Supervisor\.on_event must be callable"):
        Supervisor(on_event=42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Beyond the seed 7: ordered shutdown


class Journal:
    """An ordered record of who was signalled and who returned, shared by processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[str] = []

    def write(self, entry: str) -> None:
        with self._lock:
            self.entries.append(entry)

    def hook(self, event: SupervisorEvent) -> None:
        if isinstance(event, ProcessStopped):
            self.write(f"{event.process_name} returned")

    def process(self) -> ProcessFunc:
        def writes_when_signalled(
            finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
        ) -> Exception | None:
            finish_signal.wait(PROCESS_BOUND)
            self.write(f"{process_name} signalled")
            return None

        return writes_when_signalled


def test_reverse_order_stops_later_processes_first(supervisors: Supervisors) -> None:
    journal, events = Journal(), EventLog()

    def hook(event: SupervisorEvent) -> None:
        journal.hook(event)
        events(event)

    harness = supervisors.new(shutdown_order="reverse", on_event=hook)
    harness.sup.register("database", journal.process())
    harness.sup.register("cache", journal.process())
    harness.sup.register("web", journal.process())
    harness.sup.start()
    events.wait_for(ProcessStarted, count=3)
    report = harness.stop()
    assert journal.entries == [
        "web signalled", "web returned",
        "cache signalled", "cache returned",
        "database signalled", "database returned",
    ]  # fmt: skip
    assert report.finished == ("database", "cache", "web")
    assert report.exit_code == EXIT_OK


def test_parallel_order_signals_every_process_at_once(h: Harness) -> None:
    first_signalled = threading.Event()
    waited: list[bool] = []

    def first(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        first_signalled.set()
        return None

    def last(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        waited.append(first_signalled.wait(BOUND))  # in reverse order this would deadlock
        return None

    h.sup.register("first", first)
    h.sup.register("last", last)
    h.sup.start()
    h.events.wait_for(ProcessStarted, count=2)
    report = h.stop()
    assert waited == [True]
    assert report.exit_code == EXIT_OK


def test_reverse_order_moves_on_when_a_hung_process_runs_out_the_timeout(
    supervisors: Supervisors,
) -> None:
    timeout = 0.1
    harness = supervisors.new(shutdown_timeout=timeout, shutdown_order="reverse")
    release = threading.Event()
    signalled_at: dict[str, float] = {}
    hung_released_when_signalled: dict[str, bool] = {}

    def first(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        signalled_at[process_name] = time.monotonic()
        hung_released_when_signalled[process_name] = release.is_set()
        return None

    def hangs(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        signalled_at[process_name] = time.monotonic()
        release.wait(PROCESS_BOUND)
        return None

    try:
        harness.sup.register("first", first)
        harness.sup.register("hung", hangs)
        harness.sup.register("last", first)
        harness.sup.start()
        harness.events.wait_for(ProcessStarted, count=3)
        shutdown_began = time.monotonic()
        report = harness.stop()
        harness.events.wait_for(ProcessStopped, "first")  # it gets its signal after all
    finally:
        release.set()
    assert "hung" in report.unfinished
    assert "last" in report.finished
    assert signalled_at["last"] <= signalled_at["hung"] < signalled_at["first"]
    assert hung_released_when_signalled == {"last": False, "first": False}
    assert signalled_at["first"] - shutdown_began >= timeout * 0.9  # not before the timeout
    assert report.duration < GENEROUS


class ClientAndServer:
    """A "client" that depends on a "server" registered after it, under reverse order.

    In a reverse shutdown the server is signalled first. It tells the client it is gone,
    then returns only once the client has ended (its ProcessStopped event): so the client
    certainly ends during the shutdown but before its own finish signal.
    """

    def __init__(self, supervisors: Supervisors, client: ProcessFunc) -> None:
        self.server_gone = threading.Event()
        self.client_stopped = threading.Event()
        self.events = EventLog()
        self.harness = supervisors.new(shutdown_order="reverse", on_event=self._hook)
        self.harness.sup.register("client", client, FAST)  # is_fatal=True
        self.harness.sup.register("server", self._server, FAST)

    def _hook(self, event: SupervisorEvent) -> None:
        self.events(event)
        if isinstance(event, ProcessStopped) and event.process_name == "client":
            self.client_stopped.set()

    def _server(
        self, finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        self.server_gone.set()
        self.client_stopped.wait(PROCESS_BOUND)
        return None

    def run_and_stop(self) -> ShutdownReport:
        self.harness.sup.start()
        self.events.wait_for(ProcessStarted, count=2)
        report = self.harness.stop()
        assert self.client_stopped.is_set()
        return report


def test_reverse_order_does_not_retry_a_process_that_fails_before_its_turn(
    supervisors: Supervisors,
) -> None:
    # The client loses its server during the shutdown and returns an error: a shutdown
    # has begun, so no retry may start (rule 5), although its own turn has not come yet.
    runs: list[int] = []

    def client(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            setup.server_gone.wait(PROCESS_BOUND)
            return ConnectionError("server went away")
        finish_signal.wait(PROCESS_BOUND)
        return None

    setup = ClientAndServer(supervisors, client)
    report = setup.run_and_stop()
    assert report.exit_code == EXIT_OK
    assert runs == [1]
    assert len(setup.events.of(ProcessStarted, "client")) == 1
    assert setup.harness.sup.status()["client"].state is ProcessLifecycle.FINISHED


def test_reverse_order_clean_return_before_its_turn_is_graceful_not_fatal(
    supervisors: Supervisors,
) -> None:
    def client(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        setup.server_gone.wait(PROCESS_BOUND)
        return None  # nothing left to do once the server is gone

    setup = ClientAndServer(supervisors, client)
    report = setup.run_and_stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.exit_code == EXIT_OK
    assert setup.events.of(ProcessStopped, "client") == [
        ProcessStopped("client", ProcessLifecycle.FINISHED, None)
    ]
    logs = setup.harness.logs
    assert logs.with_message("can't recover important process. exit..") == []
    assert logs.with_message("process terminates with no error") == []
    assert logs.messages("client")[-1] == "process terminates gracefully"  # core-1


def test_reverse_order_ends_a_retry_wait_at_once(supervisors: Supervisors) -> None:
    # "waiting" was registered first, so its turn comes last; but it is not running its
    # function, only waiting to retry: no run may start any more, so its wait ends at
    # once, while the later "hung" process still holds up the reverse order.
    harness = supervisors.new(shutdown_order="reverse")
    release = threading.Event()

    def hangs(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        release.wait(PROCESS_BOUND)
        return None

    try:
        harness.sup.register(
            "waiting", Scripted("return error"), ProcessOption(retry_interval=LONG)
        )
        harness.sup.register("hung", hangs)
        harness.sup.start()
        harness.events.wait_for(ProcessWaiting, "waiting")
        harness.events.wait_for(ProcessStarted, "hung")
        harness.sup.shutdown()
        (stopped,) = harness.events.wait_for(ProcessStopped, "waiting")
        assert not release.is_set()
    finally:
        release.set()
    report = harness.sup.wait_on_shutdown_signal()
    assert stopped.state is ProcessLifecycle.FINISHED
    assert len(harness.events.of(ProcessStarted, "waiting")) == 1
    assert report.exit_code == EXIT_OK


def test_unknown_shutdown_order_raises() -> None:
    with pytest.raises(ValueError, match=r"Supervisor\.shutdown_order.*'sideways'"):
        Supervisor(shutdown_order="sideways")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Beyond the seed 8: nested supervisors


def test_nested_child_runs_and_stops_with_its_parent(supervisors: Supervisors) -> None:
    child = supervisors.new()
    child.sup.register("a", until_finished)
    child.sup.register("b", until_finished)
    parent = supervisors.new()
    parent.sup.register("child", child.sup.as_process())
    parent.sup.register("sibling", until_finished)
    parent.sup.start()
    child.events.wait_for(ProcessStarted, count=2)
    assert {s.state for s in child.sup.status().values()} == {ProcessLifecycle.RUNNING}
    report = parent.stop()
    assert report.finished == ("child", "sibling")
    assert report.exit_code == EXIT_OK
    assert {s.state for s in child.sup.status().values()} == {ProcessLifecycle.FINISHED}
    (child_shutdown,) = child.events.of(ShutdownStarted)
    assert child_shutdown.cause is ShutdownCause.REQUEST


def test_nested_child_fatal_process_makes_the_parent_retry_with_fresh_child_counters(
    supervisors: Supervisors,
) -> None:
    child = supervisors.new()
    seen: list[tuple[int, int, int]] = []

    def crashes(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        status = child.sup.status()[process_name]
        seen.append((status.attempt, status.recovered_num, status.restarts))
        raise ValueError("child worker crashed")

    # In the child: one recovery, then the fatal worker gives up and the child stops.
    child.sup.register("worker", crashes, dataclasses.replace(FAST, recover_count=1))
    child.sup.register("helper", until_finished)
    parent = supervisors.new()
    parent_options = dataclasses.replace(FAST, retry_count=2, is_fatal=False)
    parent.sup.register("child", child.sup.as_process(), parent_options)
    parent.sup.start()
    (gave_up,) = parent.events.wait_for(ProcessGaveUp, "child")
    # Each life of the child starts its worker afresh: (attempt, recovered_num, restarts).
    assert seen == [(1, 0, 0), (1, 1, 1), (1, 0, 0), (1, 1, 1)]
    failures = parent.events.of(ProcessFailed, "child")
    assert [f.panic for f in failures] == [False, False]
    for failure in failures:
        assert isinstance(failure.error, SupervisorFailed)
        assert failure.error.report.cause is ShutdownCause.FATAL_PROCESS
        assert failure.error.report.process_name == "worker"
        assert failure.error.report.finished == ("worker", "helper")
    assert isinstance(gave_up.error, SupervisorFailed)
    assert parent.sup.status()["child"].state is ProcessLifecycle.FAILED
    assert len(child.events.of(ShutdownStarted)) == 2
    assert parent.stop().exit_code == EXIT_OK


def test_nested_child_that_gives_up_as_a_fatal_process_stops_the_parent(
    supervisors: Supervisors,
) -> None:
    child = supervisors.new()
    child.sup.register(
        "worker", Scripted(then="return error"), dataclasses.replace(FAST, retry_count=1)
    )
    parent = supervisors.new()
    parent.sup.register("child", child.sup.as_process(), dataclasses.replace(FAST, retry_count=1))
    parent.sup.register("sibling", until_finished)
    parent.sup.start()
    report = parent.sup.wait_on_shutdown_signal()
    assert report.cause is ShutdownCause.FATAL_PROCESS
    assert report.process_name == "child"
    assert isinstance(report.error, SupervisorFailed)
    assert report.error.report.process_name == "worker"
    assert report.exit_code == EXIT_FATAL


def test_as_process_needs_a_parent_supervisor(h: Harness) -> None:
    run_child = h.sup.as_process()
    with pytest.raises(TypeError, match="must be run by a Supervisor"):
        run_child(threading.Event(), "child", queue.SimpleQueue())
