"""Tests of the redesign (issue #10), to be merged into test_supervisor.py."""

from __future__ import annotations

import logging
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import supervisor
from supervisor import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_UNFINISHED,
    ExitCode,
    ProcessGaveUp,
    ProcessLifecycle,
    ProcessOption,
    ProcessWaiting,
    Supervisor,
    TerminateChannel,
)
from test_supervisor import (
    PROCESS_BOUND,
    Harness,
    Hung,
    RecordingHandler,
    Supervisors,
    h,
    no_go_words_logged,
    no_thread_left_behind,
    own_logger,
    supervisors,
    until_finished,
)

__all__ = ["h", "no_go_words_logged", "no_thread_left_behind", "supervisors"]  # fixtures

RETRY, RECOVER, GIVE_UP = (
    ProcessLifecycle.WAITING_TO_RETRY,
    ProcessLifecycle.WAITING_TO_RECOVER,
    ProcessLifecycle.FAILED,
)

# -- the restart policy, a pure function: a table of cases ---------------------------

# (what it shows, options, history (attempt, recovered, waits, ran_for, raised, draw),
#  answer (state, delay, attempt, recovered, waits))
POLICY_CASES = [
    ("a returned error is retried after retry_interval",
     {}, (1, 0, 0, 0.0, False, 0.0), (RETRY, 3.0, 1, 0, 1)),
    ("the last attempt of the budget gives up",
     {}, (3, 0, 2, 0.0, False, 0.0), (GIVE_UP, 0.0, 3, 0, 2)),
    ("a process with one attempt is never retried",
     {"retry_count": 1}, (1, 0, 0, 0.0, False, 0.0), (GIVE_UP, 0.0, 1, 0, 0)),
    ("a crash is recovered after recover_interval, with a fresh retry budget",
     {}, (2, 0, 1, 0.0, True, 0.0), (RECOVER, 2.0, 0, 1, 2)),
    ("recoveries run out after recover_count",
     {}, (1, 10, 5, 0.0, True, 0.0), (GIVE_UP, 0.0, 1, 10, 5)),
    ("recover=False gives up at the first crash",
     {"recover": False}, (1, 0, 0, 0.0, True, 0.0), (GIVE_UP, 0.0, 1, 0, 0)),
    ("recover_count=0 never recovers",
     {"recover_count": 0}, (1, 0, 0, 0.0, True, 0.0), (GIVE_UP, 0.0, 1, 0, 0)),
    ("the backoff multiplies each consecutive wait",
     {"retry_interval": 1.0, "backoff_factor": 2.0, "retry_count": 10},
     (3, 0, 2, 0.0, False, 0.0), (RETRY, 4.0, 3, 0, 3)),
    ("retry and recover waits count alike for the backoff",
     {"recover_interval": 1.0, "backoff_factor": 2.0},
     (1, 0, 3, 0.0, True, 0.0), (RECOVER, 8.0, 0, 1, 4)),
    ("max_interval caps a wait",
     {"retry_interval": 1.0, "backoff_factor": 10.0, "max_interval": 5.0, "retry_count": 10},
     (2, 0, 2, 0.0, False, 0.0), (RETRY, 5.0, 2, 0, 3)),
    ("the jitter lengthens a wait by its fraction of the draw",
     {"retry_interval": 2.0, "jitter": 0.5}, (1, 0, 0, 0.0, False, 0.5), (RETRY, 2.5, 1, 0, 1)),
    ("the jitter comes before the cap",
     {"retry_interval": 2.0, "jitter": 1.0, "max_interval": 3.0},
     (1, 0, 0, 0.0, False, 0.9), (RETRY, 3.0, 1, 0, 1)),
    ("a backoff that overflows a float is capped",
     {"retry_interval": 1.0, "backoff_factor": 1e300, "max_interval": 7.0, "retry_count": 10},
     (1, 0, 5, 0.0, False, 0.0), (RETRY, 7.0, 1, 0, 6)),
    ("a zero interval stays zero when the backoff overflows",
     {"retry_interval": 0.0, "backoff_factor": 1e300, "retry_count": 10},
     (1, 0, 5, 0.0, False, 0.0), (RETRY, 0.0, 1, 0, 6)),
    ("a stable run resets the retry budget, the recoveries and the backoff",
     {"reset_after": 5.0, "retry_interval": 1.0, "backoff_factor": 2.0},
     (3, 4, 6, 5.0, False, 0.0), (RETRY, 1.0, 1, 0, 1)),
    ("a crash after a stable run is a first recovery",
     {"reset_after": 5.0}, (3, 10, 6, 9.0, True, 0.0), (RECOVER, 2.0, 0, 1, 1)),
    ("a run shorter than reset_after resets nothing",
     {"reset_after": 5.0}, (3, 0, 2, 4.99, False, 0.0), (GIVE_UP, 0.0, 3, 0, 2)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "history", "answer"),
    [pytest.param(o, hist, a, id=name) for name, o, hist, a in POLICY_CASES],
)
def test_restart_policy(
    options: dict[str, object],
    history: tuple[int, int, int, float, bool, float],
    answer: tuple[ProcessLifecycle, float, int, int, int],
) -> None:
    assert supervisor._restart_policy(ProcessOption(**options), *history) == answer  # type: ignore[arg-type]


@given(
    attempt=st.integers(1, 50),
    recovered=st.integers(0, 50),
    waits=st.integers(0, 2000),
    ran_for=st.floats(0, 1e6),
    raised=st.booleans(),
    draw=st.floats(0, 1, exclude_max=True),
    factor=st.floats(1, 1e6),
    jitter=st.floats(0, 1),
    cap=st.none() | st.floats(3, 1e6),
)
def test_restart_policy_waits_are_bounded_and_counters_move_forward(  # noqa: PLR0917
    attempt: int, recovered: int, waits: int, ran_for: float, raised: bool, draw: float,
    factor: float, jitter: float, cap: float | None,
) -> None:
    options = ProcessOption(backoff_factor=factor, jitter=jitter, max_interval=cap)
    state, delay, next_attempt, next_recovered, next_waits = supervisor._restart_policy(
        options, attempt, recovered, waits, ran_for, raised, draw
    )
    assert state in (RETRY, RECOVER, GIVE_UP)
    assert 0.0 <= delay <= (threading.TIMEOUT_MAX if cap is None else cap)
    if state is GIVE_UP:
        assert (delay, next_waits) == (0.0, waits)
    else:
        assert next_waits == waits + 1
        base = options.retry_interval if state is RETRY else options.recover_interval
        assert delay >= base or (cap is not None and delay == cap)
    assert next_recovered == recovered + (state is RECOVER)
    assert next_attempt == (0 if state is RECOVER else attempt)


# -- the clock and random seams ---------------------------------------------------------


def test_reset_after_is_timed_by_the_clock_seam(h: Harness) -> None:
    # The third run lasts a simulated minute: it resets the retry budget, so the process
    # gives up only after five runs (without the reset: after three). Nothing sleeps.
    now = [1000.0]
    h.sup._clock = lambda: now[0]
    runs = []

    def long_third_run(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        runs.append(process_name)
        if len(runs) == 3:
            now[0] += 60.0
        return RuntimeError(f"run {len(runs)}")

    options = ProcessOption(retry_interval=0.001, reset_after=30.0, is_fatal=False)
    h.sup.register("p", long_third_run, options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert len(runs) == 5
    status = h.sup.status()["p"]
    assert (status.state, status.attempt, status.restarts) == (ProcessLifecycle.FAILED, 3, 4)
    assert status.since == 1060.0  # the clock seam also dates the states


def test_jitter_is_drawn_from_the_random_seam(h: Harness) -> None:
    h.sup._random = lambda: 0.5
    options = ProcessOption(retry_interval=0.001, jitter=0.4, is_fatal=False)
    h.sup.register("p", lambda f, n, c: RuntimeError("no"), options)
    h.sup.start()
    h.events.wait_for(ProcessGaveUp, "p")
    assert [e.delay for e in h.events.of(ProcessWaiting, "p")] == [0.001 * (1 + 0.4 * 0.5)] * 2


# -- exit codes -------------------------------------------------------------------------


def test_exit_codes_are_one_int_enum_and_the_old_names_are_its_members() -> None:
    assert issubclass(ExitCode, int)
    assert [(c.name, int(c)) for c in ExitCode] == [("OK", 0), ("FATAL", 1), ("UNFINISHED", 2)]
    assert (EXIT_OK, EXIT_UNFINISHED) == (ExitCode.OK, ExitCode.UNFINISHED)
    assert EXIT_FATAL is ExitCode.FATAL


def test_the_report_exit_code_is_an_exit_code(h: Harness) -> None:
    h.sup.register("p", until_finished)
    h.sup.start()
    report = h.stop()
    assert type(report.exit_code) is ExitCode
    assert report.exit_code is ExitCode.OK


# -- point 7: a process whose function returned is never reported unfinished ------------


class BlocksOnLine(logging.Filter):
    """Blocks the thread that logs ``line`` until ``released`` is set (bounded). A filter
    runs outside the handler's lock, so other threads' lines are not held up."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line
        self.blocked = threading.Event()
        self.released = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == self.line:
            self.blocked.set()
            self.released.wait(PROCESS_BOUND)
        return True


def test_a_process_that_returned_but_is_slow_to_log_its_end_is_reported_finished() -> None:
    # Before the fix, a process counted as running until its last log line was written:
    # a report taken meanwhile listed it as unfinished, with a stack inside logging.
    handler = RecordingHandler()
    slow = BlocksOnLine("process 'p' stopped")
    handler.addFilter(slow)
    logger = own_logger("tests.slow_end_log", handler)
    sup = Supervisor(0.2, logger)
    try:
        sup.register("p", until_finished)
        sup.start()
        sup.shutdown()
        report = sup.wait_on_shutdown_signal(handle_signals=False)
        assert slow.blocked.is_set()  # the report was taken while p logged its end
        assert (report.finished, report.unfinished, report.stacks) == (("p",), (), {})
        assert report.exit_code is EXIT_OK
    finally:
        slow.released.set()
        logger.removeHandler(handler)


def test_the_stack_of_an_unfinished_process_is_its_functions(supervisors: Supervisors) -> None:
    harness = supervisors.new(shutdown_timeout=0.05)
    hung = Hung()
    try:
        harness.sup.register("hung", hung)
        harness.sup.start()
        hung.wait_entered()
        report = harness.stop()
    finally:
        hung.release()
    stack = report.stacks["hung"]
    first_frame = stack.splitlines()[0]
    assert "__call__" in first_frame, stack
    assert "test_supervisor.py" in first_frame, stack
    assert "stuck_in_here" in stack
    assert "supervisor.py\"" not in stack.replace("test_supervisor.py", "")  # none of ours
    assert "threading.py" in stack  # only below the function: Event.wait
    assert stack.index("stuck_in_here") < stack.index("threading.py")


class LockWatch(logging.Filter):
    """Notes every log line emitted while the supervisor's lock is held by the thread
    that logs it (a log handler is user code: it must never run under that lock)."""

    def __init__(self) -> None:
        super().__init__()
        self.sup: Supervisor | None = None
        self.under_lock: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.sup is not None and self.sup._lock._is_owned():  # type: ignore[attr-defined]
            self.under_lock.append(record.getMessage())
        return True


@pytest.mark.parametrize("how", ["shutdown", "remove"])
def test_no_line_is_logged_under_the_supervisors_lock(how: str) -> None:
    watch = LockWatch()
    handler = RecordingHandler()
    handler.addFilter(watch)
    logger = own_logger(f"tests.lock_watch_{how}", handler)
    sup = Supervisor(5.0, logger)
    watch.sup = sup
    try:
        waiting = threading.Event()
        sup._random = lambda: 0.5  # (the seam; the draw is not asserted here)

        def fails_then_waits(
            finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
        ) -> Exception | None:
            waiting.set()
            return RuntimeError("fails")

        sup.register("p", fails_then_waits, ProcessOption(retry_interval=60.0, is_fatal=False))
        sup.register("q", until_finished)
        sup.start()
        assert waiting.wait(PROCESS_BOUND)
        if how == "remove":
            assert sup.remove("p", timeout=PROCESS_BOUND)  # its retry wait ends: it stops
        sup.shutdown()
        report = sup.wait_on_shutdown_signal(handle_signals=False)
    finally:
        logger.removeHandler(handler)
    assert report.exit_code is EXIT_OK
    assert handler.records, "nothing was logged"
    assert watch.under_lock == []
