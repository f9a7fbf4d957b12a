"""Restart strategies and restart intensity (issue #12), as tests.

``Supervisor(strategy=..., max_restarts=..., max_seconds=...)``: a group restart under
"one_for_all" and "rest_for_one", the restart limit, their events, log lines and report,
the example ``examples/pipeline.py``, and a model-based test of both. The helpers are
test_supervisor.py's (imported by name: its autouse fixtures, imported here, apply here
too); the few added here are a journal of runs (``Stage``), a fake clock (``FakeClock``)
and a maker of supervisors with a strategy (``strategic``).

How the tests synchronise: as in test_supervisor.py, on threading.Events, the event log
and the journal, every wait bounded by BOUND; the restart window is driven by a fake clock
that the process functions advance, so that no test sleeps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supervisor
from supervisor import (
    GroupRestart,
    ProcessFailed,
    ProcessGaveUp,
    ProcessLifecycle,
    ProcessOption,
    ProcessStarted,
    ProcessStopped,
    RestartStrategy,
    ShutdownCause,
    ShutdownStarted,
    Supervisor,
    SupervisorEvent,
    SupervisorFailed,
    TerminateChannel,
    TerminateSupervisor,
)
from test_supervisor import (
    AT_ONCE,
    BOUND,
    HYPOTHESIS_CHECKS,
    INF,
    NAN,
    PROCESS_BOUND,
    EventLog,
    Harness,
    Hung,
    RecordingHandler,
    StartChild,
    Supervisors,
    _model_trajectory,
    _ModelOutcome,
    assert_in_order,
    bad_supervisor,
    bounded_report,
    child,
    join_all,
    no_go_words_logged,
    no_thread_left_behind,
    own_logger,
    threads_of,
    unique_prefix,
)

__all__ = ["child", "no_go_words_logged", "no_thread_left_behind"]  # fixtures, used by name

# ---------------------------------------------------------------------------
# Helpers: a journal of runs, scripted steps, a fake clock, supervisors with a strategy.


@dataclasses.dataclass
class Run:
    """One run of one process, as the journal saw it."""

    name: str
    number: int  # from 1
    finish_signal: threading.Event
    set_at_start: bool  # its finish signal was set when the run began
    set_at_return: bool | None = None  # ... when it returned (None: not returned yet)


Step = Callable[[Run], "Exception | None"]
"""What one run does; after its script, a process waits for its finish signal."""


class Stage:
    """Processes that play a script of steps, one per run, and a journal of every run:
    ("start" | "return", name, run number), in order."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.journal: list[tuple[str, str, int]] = []
        self.runs: dict[str, list[Run]] = {}

    def process(self, *script: Step) -> supervisor.ProcessFunc:
        def play(
            finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
        ) -> Exception | None:
            with self._condition:
                runs = self.runs.setdefault(process_name, [])
                run = Run(process_name, len(runs) + 1, finish_signal, finish_signal.is_set())
                runs.append(run)
                self.journal.append(("start", process_name, run.number))
                self._condition.notify_all()
            step = script[run.number - 1] if run.number <= len(script) else wait_for_finish
            try:
                return step(run)
            finally:
                with self._condition:
                    run.set_at_return = finish_signal.is_set()
                    self.journal.append(("return", process_name, run.number))
                    self._condition.notify_all()

        return play

    def count(self, name: str) -> int:
        with self._condition:
            return len(self.runs.get(name, []))

    def run(self, name: str, number: int) -> Run:
        with self._condition:
            return self.runs[name][number - 1]

    def _wait(self, entry: tuple[str, str, int]) -> None:
        with self._condition:
            assert self._condition.wait_for(lambda: entry in self.journal, BOUND), (
                f"no {entry} in {self.journal}"
            )

    def wait_started(self, name: str, number: int = 1) -> Run:
        self._wait(("start", name, number))
        return self.run(name, number)

    def wait_returned(self, name: str, number: int = 1) -> Run:
        self._wait(("return", name, number))
        return self.run(name, number)

    def position(self, kind: str, name: str, number: int) -> int:
        with self._condition:
            return self.journal.index((kind, name, number))


def wait_for_finish(run: Run) -> Exception | None:
    run.finish_signal.wait(PROCESS_BOUND)
    return None


def fail_when(gate: threading.Event, how: Literal["return", "raise"] = "return") -> Step:
    """Wait for ``gate``, then fail: return a RuntimeError, or raise a ValueError."""

    def step(run: Run) -> Exception | None:
        assert gate.wait(PROCESS_BOUND), "the gate was never opened"
        if how == "raise":
            raise ValueError(f"{run.name} crashed in run {run.number}")
        return RuntimeError(f"{run.name} failed in run {run.number}")

    return step


def fail_at_once(run: Run) -> Exception | None:
    return RuntimeError(f"{run.name} failed in run {run.number}")


def after_stop(outcome: Callable[[Run], Exception | None]) -> Step:
    """Wait for the finish signal, then do ``outcome`` (return it, or raise)."""

    def step(run: Run) -> Exception | None:
        run.finish_signal.wait(PROCESS_BOUND)
        return outcome(run)

    return step


def held_until(release: threading.Event) -> Step:
    """Wait for the finish signal, then go on waiting until ``release`` (a slow stop)."""

    def step(run: Run) -> Exception | None:
        run.finish_signal.wait(PROCESS_BOUND)
        release.wait(PROCESS_BOUND)
        return None

    return step


class FakeClock:
    """The supervisor's clock seam (``sup._clock``): float seconds that only move when a
    process function advances them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def advance_then_fail(clock: FakeClock, seconds: float) -> Step:
    def step(run: Run) -> Exception | None:
        clock.advance(seconds)
        return RuntimeError(f"{run.name} failed in run {run.number}")

    return step


ZERO = ProcessOption(retry_interval=0, recover_interval=0)
"""Go's budgets, no waits."""
LARGE = ProcessOption(retry_interval=0, recover_interval=0, retry_count=1000, recover_count=1000)
"""Large budgets, no waits: only the restart limit can stop such a process."""
STRICT = ProcessOption(retry_count=1, recover=False)
"""A fatal process that any failure that counts would end, and shut the supervisor down."""


class Strategic(Supervisors):
    """test_supervisor's Supervisors, for supervisors with a strategy and a limit."""

    def with_strategy(
        self,
        strategy: RestartStrategy = "one_for_one",
        *,
        max_restarts: int | None = None,
        max_seconds: float = 5.0,
        shutdown_timeout: float = BOUND,
        clock: FakeClock | None = None,
    ) -> Harness:
        handler = RecordingHandler()
        logger = own_logger(f"{self._test_name}.{len(self._made)}", handler)
        events = EventLog()
        sup = Supervisor(
            shutdown_timeout, logger, on_event=events, strategy=strategy,
            max_restarts=max_restarts, max_seconds=max_seconds,
        )
        if clock is not None:
            sup._clock = clock
        harness = Harness(sup, events, handler, logger)
        self._made.append(harness)
        return harness


@pytest.fixture
def strategic(request: pytest.FixtureRequest) -> Iterator[Strategic]:
    made = Strategic(request.node.name)
    try:
        yield made
    finally:
        made.close()


def counters(h: Harness, name: str) -> tuple[ProcessLifecycle, int, int, int]:
    """(state, attempt, recovered_num, restarts) of one process."""
    row = h.sup.status()[name]
    return row.state, row.attempt, row.recovered_num, row.restarts


def three(h: Harness, stage: Stage, *, a: Sequence[Step] = (), b: Sequence[Step] = (),
          c: Sequence[Step] = (), options: ProcessOption = ZERO) -> None:
    """Register A, B and C (in that order) with these scripts, start, and wait until each
    has begun its first run."""
    for name, script in (("A", a), ("B", b), ("C", c)):
        h.sup.register(name, stage.process(*script), options)
    h.sup.start()
    for name in "ABC":
        stage.wait_started(name)


# ---------------------------------------------------------------------------
# 1. Acceptance (issue #12)


def test_one_for_all_stops_every_other_process_and_runs_all_again_after_they_returned(
    strategic: Strategic,
) -> None:
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    three(h, stage, a=[fail_when(gate)])
    gate.set()
    for name in "ABC":
        stage.wait_started(name, 2)
    for name in "BC":
        first = stage.run(name, 1)
        assert first.set_at_return, f"{name}'s first run returned before its finish signal"
        assert stage.position("return", name, 1) < stage.position("start", "A", 2)
    assert not stage.run("A", 1).set_at_return  # A failed on its own
    assert counters(h, "B")[1:] == (1, 0, 1)  # attempt 1, recovered_num 0, restarts 1
    assert counters(h, "C")[1:] == (1, 0, 1)
    assert counters(h, "A")[1:] == (2, 0, 1)
    assert h.events.of(GroupRestart) == [GroupRestart("A", ("B", "C"))]
    report = h.stop()
    assert (report.cause, report.exit_code) == (ShutdownCause.REQUEST, 0)
    assert [stage.count(name) for name in "ABC"] == [2, 2, 2]


def test_rest_for_one_restarts_the_failed_process_and_those_registered_after_it(
    strategic: Strategic,
) -> None:
    h, stage, gate = strategic.with_strategy("rest_for_one"), Stage(), threading.Event()
    three(h, stage, b=[fail_when(gate)])
    gate.set()
    stage.wait_started("B", 2)
    stage.wait_started("C", 2)
    assert stage.run("C", 1).set_at_return
    assert stage.position("return", "C", 1) < stage.position("start", "B", 2)
    assert h.events.of(GroupRestart) == [GroupRestart("B", ("C",))]
    assert counters(h, "C")[1:] == (1, 0, 1)
    assert not stage.run("A", 1).finish_signal.is_set()  # A, registered before B, runs on
    assert counters(h, "A") == (ProcessLifecycle.RUNNING, 1, 0, 0)
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert [stage.count(name) for name in "ABC"] == [1, 2, 2]


def test_one_for_one_by_default_runs_only_the_failed_process_again(
    strategic: Strategic,
) -> None:
    h, stage, gate = strategic.with_strategy(), Stage(), threading.Event()
    three(h, stage, a=[fail_when(gate)])
    gate.set()
    stage.wait_started("A", 2)
    assert not stage.run("B", 1).finish_signal.is_set()
    assert not stage.run("C", 1).finish_signal.is_set()
    report = h.stop()
    assert [stage.count(name) for name in "ABC"] == [2, 1, 1]
    assert h.events.of(GroupRestart) == []
    assert report.cause is ShutdownCause.REQUEST
    assert Supervisor()._strategy == "one_for_one"  # the default


def test_a_sibling_that_ignores_its_finish_signal_ends_the_supervisor_naming_it(
    strategic: Strategic,
) -> None:
    timeout = 0.5
    h = strategic.with_strategy("one_for_all", shutdown_timeout=timeout)
    stage, gate, hung = Stage(), threading.Event(), Hung()
    try:
        h.sup.register("A", stage.process(fail_when(gate)), ZERO)
        h.sup.register("B", hung, ZERO)
        h.sup.register("C", stage.process(), ZERO)
        h.sup.start()
        hung.wait_entered()
        stage.wait_started("C")
        gate.set()
        h.events.wait_for(GroupRestart)
        began = time.monotonic()
        report = bounded_report(h.sup, BOUND)
        took = time.monotonic() - began
    finally:
        hung.release()
    assert (report.cause, report.process_name, report.exit_code) == (
        ShutdownCause.FATAL_PROCESS, "B", 1
    )
    assert report.reason == (
        "process 'B' did not stop within 0.5 s for a group restart (after 'A' failed)"
    )
    assert report.unfinished == ("B",)
    assert took <= 2 * timeout + AT_ONCE  # the group's stop, then the usual shutdown
    assert [stage.count("A"), stage.count("C")] == [1, 1]  # nothing ran again
    assert h.events.of(ShutdownStarted) == [ShutdownStarted(report.reason, report.cause)]


@pytest.mark.parametrize("how", ["return", "raise"])
def test_restart_limit_of_3_in_10_seconds_lets_a_failing_process_run_exactly_4_times(
    strategic: Strategic, how: Literal["return", "raise"]
) -> None:
    clock, opened = FakeClock(), threading.Event()
    opened.set()
    h, stage = strategic.with_strategy(max_restarts=3, max_seconds=10, clock=clock), Stage()
    h.sup.register("p", stage.process(*[fail_when(opened, how)] * 1000), LARGE)
    h.sup.start()
    report = bounded_report(h.sup, BOUND)
    assert stage.count("p") == 4
    assert (report.cause, report.exit_code, report.process_name) == (
        ShutdownCause.RESTART_LIMIT, 1, "p"
    )
    assert report.reason == "more than 3 restarts within 10.0 s (the last: process 'p' failed)"
    assert h.sup.status()["p"].state is ProcessLifecycle.FAILED
    assert repr(report.error) == repr(
        RuntimeError("p failed in run 4") if how == "return" else ValueError("p crashed in run 4")
    )


def test_max_restarts_0_shuts_down_on_the_first_failure(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy(max_restarts=0), Stage()
    h.sup.register("p", stage.process(fail_at_once), LARGE)
    h.sup.register("q", stage.process(), LARGE)
    h.sup.start()
    report = bounded_report(h.sup, BOUND)
    assert stage.count("p") == 1
    assert (report.cause, report.process_name) == (ShutdownCause.RESTART_LIMIT, "p")
    assert stage.count("q") <= 1
    assert report.finished == ("p", "q")


def test_failures_spaced_further_apart_than_max_seconds_never_trip_the_limit(
    strategic: Strategic,
) -> None:
    clock = FakeClock()
    h, stage = strategic.with_strategy(max_restarts=1, max_seconds=10, clock=clock), Stage()
    h.sup.register("p", stage.process(*[advance_then_fail(clock, 10.5)] * 6), LARGE)
    h.sup.start()
    stage.wait_started("p", 7)  # six failures, six restarts: the seventh run waits
    assert counters(h, "p")[0] is ProcessLifecycle.RUNNING
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST


def test_a_process_failing_again_at_once_never_strands_its_group(strategic: Strategic) -> None:
    """A second failure decided before a member of the first group restart has begun its
    next run must not strand it (it once got a fresh finish signal that nobody set, and
    the supervisor shut down: "process 'B' did not stop ... for a group restart"). A
    member that has not begun its next run starts afresh anyway: it joins no new group."""
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    h.sup.register("A", stage.process(fail_when(gate), fail_at_once, fail_at_once), LARGE)
    h.sup.register("B", stage.process(), LARGE)
    h.sup.start()
    stage.wait_started("B")
    gate.set()
    stage.wait_started("A", 4)  # three failures, then it waits: no group restart follows
    restarts = h.events.of(GroupRestart)
    assert 1 <= len(restarts) <= 3
    assert set(restarts) == {GroupRestart("A", ("B",))}
    stage.wait_started("B", 1 + len(restarts))  # B runs again after each, never stranded
    report = h.stop()
    assert (report.cause, report.unfinished) == (ShutdownCause.REQUEST, ()), report.reason
    assert stage.count("B") == 1 + len(restarts)
    assert h.sup.status()["B"].state is ProcessLifecycle.FINISHED


# ---------------------------------------------------------------------------
# 2. The group restart, bullet by bullet


@pytest.mark.parametrize(
    ("how", "waiting"),
    [("return", ProcessLifecycle.WAITING_TO_RETRY), ("raise", ProcessLifecycle.WAITING_TO_RECOVER)],
)
def test_a_stopped_process_is_restarting_until_it_runs_again_and_the_failed_one_waits(
    strategic: Strategic, how: Literal["return", "raise"], waiting: ProcessLifecycle
) -> None:
    h, stage = strategic.with_strategy("one_for_all"), Stage()
    gate, release = threading.Event(), threading.Event()
    try:
        three(h, stage, a=[fail_when(gate, how)], b=[held_until(release)])
        gate.set()
        h.events.wait_for(GroupRestart)
        stage.wait_returned("C")
        assert counters(h, "B")[0] is ProcessLifecycle.RESTARTING  # still in its run
        assert counters(h, "C")[0] is ProcessLifecycle.RESTARTING  # returned, not run yet
        assert counters(h, "A")[0] is waiting
        assert [stage.count("A"), stage.count("C")] == [1, 1]
    finally:
        release.set()
    for name in "ABC":
        stage.wait_started(name, 2)
    assert all(counters(h, name)[0] is ProcessLifecycle.RUNNING for name in "ABC")
    assert [h.sup.status()[name].restarts for name in "ABC"] == [1, 1, 1]


def test_each_group_restart_adds_one_to_the_stopped_processes_restarts(
    strategic: Strategic,
) -> None:
    h, stage = strategic.with_strategy("rest_for_one"), Stage()
    gates = [threading.Event() for _ in range(3)]
    three(h, stage, a=[fail_when(gate) for gate in gates], options=LARGE)
    for number, gate in enumerate(gates, start=2):
        stage.wait_started("B", number - 1)
        stage.wait_started("C", number - 1)
        gate.set()
        for name in "ABC":
            stage.wait_started(name, number)
        assert [h.sup.status()[name].restarts for name in "ABC"] == [number - 1] * 3
    assert [counters(h, name)[1:3] for name in "BC"] == [(1, 0), (1, 0)]


def _return_none(run: Run) -> Exception | None:
    return None


def _return_error(run: Run) -> Exception | None:
    return RuntimeError("stopped, and returned an error")


def _raise_error(run: Run) -> Exception | None:
    raise ValueError("stopped, and raised")


def _raise_system_exit(run: Run) -> Exception | None:
    raise SystemExit(3)


def _return_do_not_restart(run: Run) -> Exception | None:
    return supervisor.DoNotRestart("stopped, and asked not to be restarted")


def _return_terminate(run: Run) -> Exception | None:
    return TerminateSupervisor("stopped, and asked to terminate")


def _raise_terminate(run: Run) -> Exception | None:
    raise TerminateSupervisor("stopped, and raised TerminateSupervisor")


def _return_a_bug(run: Run) -> Exception | None:
    return 42  # type: ignore[return-value]


STOPPED_OUTCOMES = [
    pytest.param(_return_none, id="returns-None"),
    pytest.param(_return_error, id="returns-an-error"),
    pytest.param(_raise_error, id="raises"),
    pytest.param(_raise_system_exit, id="raises-SystemExit"),
    pytest.param(_return_do_not_restart, id="returns-DoNotRestart"),
    pytest.param(_return_terminate, id="returns-TerminateSupervisor"),
    pytest.param(_raise_terminate, id="raises-TerminateSupervisor"),
    pytest.param(_return_a_bug, id="returns-neither"),
]


@pytest.mark.parametrize("outcome", STOPPED_OUTCOMES)
def test_a_stop_for_a_group_restart_is_no_failure_nor_end_whatever_the_run_returns_or_raises(
    strategic: Strategic, outcome: Callable[[Run], Exception | None]
) -> None:
    h = strategic.with_strategy("one_for_all", max_restarts=1)
    stage, gate = Stage(), threading.Event()
    h.sup.register("A", stage.process(fail_when(gate)), ZERO)
    h.sup.register("B", stage.process(after_stop(outcome)), STRICT)  # any counted end is fatal
    h.sup.start()
    stage.wait_started("B")
    gate.set()
    stage.wait_started("B", 2)
    stage.wait_started("A", 2)
    assert counters(h, "B") == (ProcessLifecycle.RUNNING, 1, 0, 1)
    assert [type(e) for e in h.events.events if getattr(e, "process_name", None) == "B"] == [
        ProcessStarted, ProcessStarted
    ]
    report = h.stop()
    assert (report.cause, report.exit_code) == (ShutdownCause.REQUEST, 0)


def test_a_stopped_process_keeps_its_whole_retry_budget(strategic: Strategic) -> None:
    """MODULE BUG (with the attempt counter that a stop raises): B, with retry_count=2, is
    stopped once for a group restart and then fails once by itself: that first failure must
    be retried (attempt 1 of 2), not be its last attempt."""
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    gate_b = threading.Event()
    h.sup.register("A", stage.process(fail_when(gate)), ZERO)
    h.sup.register("B", stage.process(wait_for_finish, fail_when(gate_b)),
                   ProcessOption(retry_count=2, retry_interval=0, is_fatal=False))
    h.sup.start()
    stage.wait_started("B")
    gate.set()
    stage.wait_started("B", 2)
    gate_b.set()
    stage.wait_started("B", 3)  # retried: the stop took nothing from its budget
    assert h.events.of(ProcessGaveUp, "B") == []
    assert [e.attempt for e in h.events.of(ProcessStarted, "B")] == [1, 1, 2]
    h.stop()


def test_every_run_gets_a_finish_signal_that_is_not_set(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy("one_for_all"), Stage()
    gates = [threading.Event(), threading.Event()]
    three(h, stage, a=[fail_when(gates[0]), fail_when(gates[1])])
    gates[0].set()
    for name in "ABC":
        stage.wait_started(name, 2)
    gates[1].set()
    for name in "ABC":
        stage.wait_started(name, 3)
    for name in "BC":
        runs = [stage.run(name, number) for number in (1, 2, 3)]
        assert [run.set_at_start for run in runs] == [False, False, False]
        assert len({id(run.finish_signal) for run in runs}) == 3  # a fresh one each run
        assert [run.finish_signal.is_set() for run in runs] == [True, True, False]
    h.stop()


def test_two_processes_failing_at_once_make_one_group_restart(strategic: Strategic) -> None:
    h = strategic.with_strategy("one_for_all", max_restarts=1)
    stage, gate = Stage(), threading.Event()
    three(h, stage, a=[fail_when(gate)], b=[fail_when(gate)])
    gate.set()
    for name in "ABC":
        stage.wait_started(name, 2)
    (group,) = h.events.of(GroupRestart)
    assert group.process_name in ("A", "B")
    assert [h.sup.status()[name].restarts for name in "ABC"] == [1, 1, 1]
    report = h.stop()
    assert [stage.count(name) for name in "ABC"] == [2, 2, 2]
    assert report.cause is ShutdownCause.REQUEST  # one restart: the limit of 1 holds


def test_processes_failing_while_the_group_is_stopped_join_it(strategic: Strategic) -> None:
    h = strategic.with_strategy("one_for_all", max_restarts=1)
    stage, gate = Stage(), threading.Event()
    three(h, stage, a=[fail_when(gate)], b=[after_stop(_return_error)],
          c=[after_stop(_raise_error)])
    gate.set()
    for name in "ABC":
        stage.wait_started(name, 2)
    assert len(h.events.of(GroupRestart)) == 1
    assert h.events.of(ProcessFailed, "B") == []
    assert h.events.of(ProcessFailed, "C") == []
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert [stage.count(name) for name in "ABC"] == [2, 2, 2]


def test_a_shutdown_during_a_group_restart_wins(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy("one_for_all"), Stage()
    gate, release = threading.Event(), threading.Event()
    try:
        three(h, stage, a=[fail_when(gate)], b=[held_until(release)])
        gate.set()
        h.events.wait_for(GroupRestart)
        h.sup.shutdown()
    finally:
        release.set()
    report = bounded_report(h.sup, BOUND)
    assert (report.cause, report.exit_code) == (ShutdownCause.REQUEST, 0)
    assert [stage.count(name) for name in "ABC"] == [1, 1, 1]
    assert [len(h.events.of(ProcessStarted, name)) for name in "ABC"] == [1, 1, 1]
    assert report.finished == ("A", "B", "C")


def test_a_member_removed_during_a_group_restart_never_runs_again(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy("one_for_all"), Stage()
    gate, release = threading.Event(), threading.Event()
    try:
        three(h, stage, a=[fail_when(gate)], b=[held_until(release)])
        gate.set()
        h.events.wait_for(GroupRestart)
        assert h.sup.remove("B", timeout=0.0) is False  # held: not returned yet
    finally:
        release.set()
    stage.wait_started("A", 2)
    stage.wait_started("C", 2)
    assert not join_all(threads_of(["B"]))
    assert "B" not in h.sup.status()
    assert stage.count("B") == 1
    assert h.events.of(GroupRestart) == [GroupRestart("A", ("B", "C"))]
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert report.finished == ("A", "C")


def test_processes_that_ended_for_good_are_not_restarted_nor_named(strategic: Strategic) -> None:
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    one_shot = ProcessOption(is_fatal=False, retry_count=1, recover=False)
    h.sup.register("A", stage.process(fail_when(gate)), ZERO)
    h.sup.register("done", stage.process(_return_none), one_shot)
    h.sup.register("gave-up", stage.process(fail_at_once), one_shot)
    h.sup.register("removed", stage.process(), ZERO)
    h.sup.register("B", stage.process(), ZERO)
    h.sup.start()
    h.events.wait_for(ProcessStopped, "done")
    h.events.wait_for(ProcessGaveUp, "gave-up")
    stage.wait_started("removed")
    assert h.sup.remove("removed", BOUND)
    stage.wait_started("B")
    assert h.events.of(GroupRestart) == []  # a give-up restarts no group
    gate.set()
    stage.wait_started("A", 2)
    stage.wait_started("B", 2)
    assert h.events.of(GroupRestart) == [GroupRestart("A", ("B",))]
    status = h.sup.status()
    assert status["done"].state is ProcessLifecycle.FINISHED
    assert status["gave-up"].state is ProcessLifecycle.FAILED
    h.stop()
    assert [stage.count(name) for name in ("done", "gave-up", "removed")] == [1, 1, 1]


def test_a_process_that_gives_up_restarts_no_group(strategic: Strategic) -> None:
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    h.sup.register("A", stage.process(fail_when(gate)),
                   ProcessOption(is_fatal=False, retry_count=1, recover=False))
    h.sup.register("B", stage.process(), ZERO)
    h.sup.start()
    stage.wait_started("B")
    gate.set()
    h.events.wait_for(ProcessGaveUp, "A")
    report = h.stop()
    assert h.events.of(GroupRestart) == []
    assert stage.count("B") == 1
    assert report.cause is ShutdownCause.REQUEST


def test_group_restart_event_and_log_line_name_the_failed_process_and_the_stopped_ones(
    strategic: Strategic,
) -> None:
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    three(h, stage, b=[fail_when(gate)])
    gate.set()
    for name in "ABC":
        stage.wait_started(name, 2)
    assert h.events.of(GroupRestart) == [GroupRestart("B", ("A", "C"))]  # registration order
    (record,) = h.logs.with_message("process 'B' failed: restarting 'A', 'C' with it")
    assert record.levelno == logging.WARNING
    assert record.__dict__["process_name"] == "B"
    messages = h.logs.messages("B")
    assert_in_order(
        "\n".join(messages),
        "process 'B' failed (attempt 1 of 3): RuntimeError('B failed in run 1'); retrying in 0.0 s",
        "process 'B' failed: restarting 'A', 'C' with it",
        "process 'B' started (attempt 2 of 3)",
    )
    events = [e for e in h.events.events if getattr(e, "process_name", None) == "B"]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:4] == ["ProcessStarted", "ProcessFailed", "ProcessWaiting", "GroupRestart"]
    h.stop()


def test_rest_for_one_restarts_the_last_process_alone_without_a_group_event(
    strategic: Strategic,
) -> None:
    h, stage, gate = strategic.with_strategy("rest_for_one"), Stage(), threading.Event()
    three(h, stage, c=[fail_when(gate)])
    gate.set()
    stage.wait_started("C", 2)
    h.stop()
    assert [stage.count(name) for name in "ABC"] == [1, 1, 2]
    assert h.events.of(GroupRestart) == []
    assert not [m for m in h.logs.messages() if "with it" in m]


def test_nesting_keeps_working_through_a_group_restart(strategic: Strategic) -> None:
    h, stage, gate = strategic.with_strategy("one_for_all"), Stage(), threading.Event()
    inner = Stage()
    child_sup = Supervisor(BOUND, own_logger("nested-child"))
    child_sup.register("inner", inner.process(), ZERO)
    h.sup.register("A", stage.process(fail_when(gate)), ZERO)
    h.sup.register("child", child_sup.as_process(), ZERO)
    h.sup.start()
    inner.wait_started("inner")
    gate.set()
    inner.wait_started("inner", 2)  # the child supervisor ran afresh
    assert inner.run("inner", 1).set_at_return
    assert not inner.run("inner", 2).set_at_start
    assert counters(h, "child") == (ProcessLifecycle.RUNNING, 1, 0, 1)
    assert child_sup.status()["inner"].restarts == 0  # fresh counters in the child
    report = h.stop()
    assert report.cause is ShutdownCause.REQUEST
    assert inner.run("inner", 2).set_at_return


def test_a_nested_supervisor_that_trips_its_limit_returns_supervisor_failed(
    strategic: Strategic,
) -> None:
    h, stage = strategic.with_strategy(), Stage()
    child_sup = Supervisor(BOUND, own_logger("nested-limit"), max_restarts=2)
    child_sup.register("inner", stage.process(*[fail_at_once] * 100), LARGE)
    h.sup.register("child", child_sup.as_process(),
                   ProcessOption(is_fatal=False, retry_count=1, recover=False))
    h.sup.start()
    (gave_up,) = h.events.wait_for(ProcessGaveUp, "child")
    assert isinstance(gave_up.error, SupervisorFailed)
    child_report = gave_up.error.report
    assert (child_report.cause, child_report.process_name, child_report.exit_code) == (
        ShutdownCause.RESTART_LIMIT, "inner", 1
    )
    assert stage.count("inner") == 3
    h.stop()


# ---------------------------------------------------------------------------
# 3. The restart limit


def test_failures_closer_than_max_seconds_trip_the_limit(strategic: Strategic) -> None:
    clock = FakeClock()
    h, stage = strategic.with_strategy(max_restarts=1, max_seconds=10, clock=clock), Stage()
    h.sup.register("p", stage.process(*[advance_then_fail(clock, 4.0)] * 10), LARGE)
    h.sup.start()
    report = bounded_report(h.sup, BOUND)
    assert stage.count("p") == 2  # a restart at t=4, then one at t=8 would be 2 within 10 s
    assert (report.cause, report.process_name) == (ShutdownCause.RESTART_LIMIT, "p")


def test_the_restart_window_slides(strategic: Strategic) -> None:
    # Restarts at t = 6, 12, 18, 24...: never more than 2 within any 10 s.
    clock = FakeClock()
    h, stage = strategic.with_strategy(max_restarts=2, max_seconds=10, clock=clock), Stage()
    h.sup.register("p", stage.process(*[advance_then_fail(clock, 6.0)] * 8), LARGE)
    h.sup.start()
    stage.wait_started("p", 9)
    assert h.stop().cause is ShutdownCause.REQUEST


def test_a_group_restart_counts_once_towards_the_limit(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy("one_for_all", max_restarts=1), Stage()
    gates = [threading.Event(), threading.Event()]
    three(h, stage, a=[fail_when(gates[0]), fail_when(gates[1])])
    gates[0].set()
    for name in "ABC":
        stage.wait_started(name, 2)
    assert h.sup.status()["A"].state is ProcessLifecycle.RUNNING  # 1 restart: within the limit
    gates[1].set()
    report = bounded_report(h.sup, BOUND)
    assert (report.cause, report.process_name) == (ShutdownCause.RESTART_LIMIT, "A")
    assert h.sup.status()["A"].state is ProcessLifecycle.FAILED
    assert [stage.count(name) for name in "ABC"] == [2, 2, 2]


def test_the_limit_shuts_down_even_for_a_process_that_is_not_fatal(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy(max_restarts=0), Stage()
    h.sup.register("p", stage.process(fail_at_once),
                   dataclasses.replace(LARGE, is_fatal=False))
    h.sup.start()
    report = bounded_report(h.sup, BOUND)
    assert (report.cause, report.exit_code) == (ShutdownCause.RESTART_LIMIT, 1)


def test_no_limit_by_default(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy(), Stage()
    h.sup.register("p", stage.process(*[fail_at_once] * 50), LARGE)
    h.sup.start()
    stage.wait_started("p", 51)
    assert h.stop().cause is ShutdownCause.REQUEST
    assert (Supervisor()._max_restarts, Supervisor()._max_seconds) == (None, 5.0)


def test_log_events_and_report_of_the_restart_limit(strategic: Strategic) -> None:
    h, stage = strategic.with_strategy(max_restarts=1, max_seconds=2.5, clock=FakeClock()), Stage()
    h.sup.register("p", stage.process(*[fail_at_once] * 10), LARGE)
    h.sup.start()
    report = bounded_report(h.sup, BOUND)
    limit = "more than 1 restarts within 2.5 s"
    assert report.reason == f"{limit} (the last: process 'p' failed)"
    (record,) = h.logs.with_message(
        f"process 'p' failed: RuntimeError('p failed in run 2'); {limit}: shutting down", "p"
    )
    assert record.levelno == logging.ERROR
    assert h.events.of(ProcessGaveUp, "p") == [ProcessGaveUp("p", report.error, True)]  # type: ignore[arg-type]
    assert [e.cause for e in h.events.of(ShutdownStarted)] == [ShutdownCause.RESTART_LIMIT]
    assert any(
        m.startswith(f"shutting down ({limit} (the last: process 'p' failed))")
        for m in h.logs.messages()
    )


# ---------------------------------------------------------------------------
# 4. Bad input: run here; the same entries are at the bottom, ready for BAD_CALLS.


def test_supervisor_accepts_the_edges_of_each_parameter() -> None:
    for strategy in ("one_for_one", "one_for_all", "rest_for_one"):
        Supervisor(strategy=strategy)
    Supervisor(max_restarts=0)
    Supervisor(max_restarts=None)
    Supervisor(max_restarts=10**6, max_seconds=3)  # an int is a number
    Supervisor(max_seconds=0.001)
    Supervisor(max_seconds=threading.TIMEOUT_MAX)


# ---------------------------------------------------------------------------
# 5. The example


def test_example_pipeline_restarts_the_consumers_with_the_producer(child: StartChild) -> None:
    proc = child("examples/pipeline.py")
    assert proc.finish() == 0, proc.output
    assert_in_order(
        proc.output,
        "producer: run 1",
        "producer: the source failed after item 3",
        "process 'producer' failed: restarting 'consumer-1', 'consumer-2' with it",
        "producer: run 2",
        "consumed 10 items",
        "exit code 0",
    )
    assert re.search(r"consumer-1: run 2\b", proc.output), proc.output
    assert re.search(r"consumer-2: run 2\b", proc.output), proc.output
    assert "Traceback" not in proc.output


def test_example_pipeline_stops_gracefully_on_sigterm(child: StartChild) -> None:
    proc = child("examples/pipeline.py", "--items", "0")
    proc.wait_for_line(r"consumer-2: run 1")
    proc.send(signal.SIGTERM)
    assert proc.finish() == 0, proc.output
    assert "received signal SIGTERM" in proc.output


# ---------------------------------------------------------------------------
# 6. The model: one "driver" process with a scripted life, the others its siblings.
#
# test_supervisor.py's model (_model_trajectory) gives the driver's runs. Every sibling
# waits for its finish signal, and then does what its own script says (return None, an
# error, raise...): a stop for a group restart counts for nothing, so a sibling's runs are
# 1 + the driver's group restarts that include it; its attempt stays 1 and its
# recovered_num 0. The restart limit is checked against the fake clock, which the driver
# advances by a drawn gap before each of its failures. Siblings never fail by
# themselves (what races would make of two drivers is test_supervisor's free model).


_SIBLING_OUTCOMES: tuple[Callable[[Run], Exception | None], ...] = (
    _return_none, _return_error, _raise_error, _raise_system_exit, _return_do_not_restart,
    _return_terminate, _return_a_bug,
)


@dataclasses.dataclass(frozen=True)
class _GroupCase:
    strategy: RestartStrategy
    siblings_before: int
    siblings_after: int
    max_restarts: int | None
    max_seconds: float
    gaps: tuple[float, ...]  # the clock moves by gaps[i % len] before the driver's run i+1 ends


def _predict_restarts(case: _GroupCase, failures: int) -> tuple[int, bool]:
    """How many of the driver's failures are restarts (each one run more) and whether the
    last restart would trip the limit: (restarts, tripped)."""
    times: list[float] = []
    now = 0.0
    for index in range(failures):
        now += case.gaps[index % len(case.gaps)]
        within = [t for t in times if t > now - case.max_seconds]
        if case.max_restarts is not None and len(within) >= case.max_restarts:
            return index, True
        times.append(now)
    return failures, False


def test_model_predicts_the_restart_window_by_hand() -> None:
    case = _GroupCase("one_for_one", 0, 0, 3, 10.0, (0.0,))
    assert _predict_restarts(case, 100) == (3, True)
    case = dataclasses.replace(case, max_restarts=1, gaps=(10.5,))
    assert _predict_restarts(case, 6) == (6, False)
    case = dataclasses.replace(case, max_restarts=1, gaps=(4.0,))
    assert _predict_restarts(case, 10) == (1, True)
    case = dataclasses.replace(case, max_restarts=0)
    assert _predict_restarts(case, 1) == (0, True)


_DRIVER_SCRIPTS = st.lists(
    st.sampled_from([
        "error", "error", "raise", "none", "dnr", "term",
    ]),
    max_size=5,
)


@pytest.mark.races
@settings(suppress_health_check=HYPOTHESIS_CHECKS, max_examples=150)
@given(
    strategy=st.sampled_from(("one_for_one", "one_for_all", "rest_for_one")),
    before=st.integers(0, 2),
    after=st.integers(0, 2),
    max_restarts=st.none() | st.integers(0, 4),
    gaps=st.lists(st.sampled_from([0.0, 1.0, 4.0, 11.0]), min_size=1, max_size=3),
    driver=_DRIVER_SCRIPTS,
    retry_count=st.integers(1, 4),
    recover_count=st.integers(0, 3),
    fatal=st.booleans(),
    sibling_outcomes=st.lists(st.integers(0, len(_SIBLING_OUTCOMES) - 1), min_size=1, max_size=4),
)
def test_model_group_restarts_and_the_restart_limit(  # noqa: PLR0917 (hypothesis's)
    strategy: RestartStrategy, before: int, after: int, max_restarts: int | None,
    gaps: list[float], driver: list[str], retry_count: int, recover_count: int, fatal: bool,
    sibling_outcomes: list[int],
) -> None:
    o = _ModelOutcome
    script = [
        {"error": o.ERROR, "raise": o.RAISE, "none": o.NONE, "dnr": o.DNR_RETURN,
         "term": o.TERM_RETURN}[kind] for kind in driver
    ]
    options = ProcessOption(retry_count=retry_count, recover_count=recover_count,
                            retry_interval=0, recover_interval=0, is_fatal=fatal)
    trajectory = _model_trajectory(options, script)
    case = _GroupCase(strategy, before, after, max_restarts, 10.0, tuple(gaps))
    failures = sum(1 for step in trajectory.steps if step.outcome in (o.ERROR, o.RAISE))
    gave_up = trajectory.state is ProcessLifecycle.FAILED
    restarts, tripped = _predict_restarts(case, failures - gave_up)
    driver_runs = 1 + restarts
    grouped = {
        "one_for_one": 0, "one_for_all": before + after, "rest_for_one": after,
    }[strategy]
    prefix = unique_prefix("g")
    names_before = [f"{prefix}s{i}" for i in range(before)]
    names_after = [f"{prefix}t{i}" for i in range(after)]
    siblings = names_before + names_after
    driver_name = f"{prefix}driver"
    in_group = set() if strategy == "one_for_one" else set(
        names_after if strategy == "rest_for_one" else siblings)
    assert len(in_group) == grouped

    clock, stage, ready, blocked = FakeClock(), Stage(), threading.Event(), threading.Event()
    events: list[SupervisorEvent] = []
    sup = Supervisor(BOUND, own_logger("group-model"), on_event=events.append, strategy=strategy,
                     max_restarts=max_restarts, max_seconds=10.0)
    sup._clock = clock
    runs_of_driver = 0

    def driver_process(
        finish_signal: threading.Event, name: str, channel: TerminateChannel
    ) -> Exception | None:
        nonlocal runs_of_driver
        runs_of_driver += 1
        run = runs_of_driver
        assert ready.wait(PROCESS_BOUND)
        # Every sibling has begun this round's run before the driver fails.
        for sibling in siblings:
            expected = 1 + (run - 1) * (sibling in in_group)
            stage.wait_started(sibling, expected)
        outcome = script[run - 1] if run <= len(script) else o.BLOCK
        if outcome is o.BLOCK:
            blocked.set()
            finish_signal.wait(PROCESS_BOUND)
            return None
        if outcome in (o.ERROR, o.RAISE):
            clock.advance(gaps[(run - 1) % len(gaps)])
        if outcome is o.RAISE:
            raise ValueError(f"driver crashed in run {run}")
        if outcome is o.ERROR:
            return RuntimeError(f"driver failed in run {run}")
        if outcome is o.NONE:
            return None
        if outcome is o.DNR_RETURN:
            return supervisor.DoNotRestart("done")
        return TerminateSupervisor("terminate")

    sibling_script = [after_stop(_SIBLING_OUTCOMES[i]) for i in sibling_outcomes] * 10
    for name in names_before:
        sup.register(name, stage.process(*sibling_script), STRICT)
    sup.register(driver_name, driver_process, options)
    for name in names_after:
        sup.register(name, stage.process(*sibling_script), STRICT)
    try:
        sup.start()
        ready.set()
        # The driver ends for good, or blocks on its last run (its trajectory's end).
        if trajectory.blocks and not tripped:
            assert blocked.wait(BOUND), "the driver never reached its last run"
            for sibling in siblings:
                stage.wait_started(sibling, 1 + restarts * (sibling in in_group))
        else:
            assert not join_all(threads_of([driver_name]))
        sup.shutdown()
        report = sup.wait_on_shutdown_signal(handle_signals=False)
        status = sup.status()
    finally:
        ready.set()
        sup.shutdown()
        alive = join_all(threads_of([driver_name, *siblings]))
    assert not alive

    assert runs_of_driver == driver_runs, (runs_of_driver, driver_runs)
    for sibling in siblings:
        expected_runs = 1 + restarts * (sibling in in_group)
        assert stage.count(sibling) == expected_runs, sibling
        row = status[sibling]
        assert (row.attempt, row.recovered_num, row.restarts) == (1, 0, expected_runs - 1)
        assert row.state is ProcessLifecycle.FINISHED
    groups = [e for e in events if isinstance(e, GroupRestart)]
    restarting = tuple(n for n in [*names_before, *names_after] if n in in_group)
    assert groups == [GroupRestart(driver_name, restarting)] * (restarts if restarting else 0)
    if tripped:
        assert (report.cause, report.process_name) == (ShutdownCause.RESTART_LIMIT, driver_name)
        assert status[driver_name].state is ProcessLifecycle.FAILED
    elif trajectory.cause is not None:
        assert (report.cause, report.process_name) == (trajectory.cause, driver_name)
    else:
        assert report.cause is ShutdownCause.REQUEST
    assert report.unfinished == ()


# ---------------------------------------------------------------------------
# 7. The bad-input entries (issue #12, point 4), in test_supervisor.py's BAD_CALLS format.
#    >>> READY TO PASTE into BAD_CALLS (uses bad_supervisor, NAN and INF from there) >>>

STRATEGY_BAD_CALLS = [
    # Supervisor(strategy=...): not one of the three, whatever its type (ValueError).
    pytest.param(
        bad_supervisor(strategy="one_for_none"),
        ValueError,
        r"^Supervisor\.strategy must be one of \('one_for_one', 'one_for_all', 'rest_for_one'\),"
        r" got 'one_for_none'$",
        id="supervisor-strategy-unknown",
    ),
    pytest.param(
        bad_supervisor(strategy="ONE_FOR_ALL"),
        ValueError,
        r"strategy.*'one_for_all'.*got 'ONE_FOR_ALL'",
        id="supervisor-strategy-wrong-case",
    ),
    pytest.param(
        bad_supervisor(strategy=None), ValueError, r"strategy.*got None",
        id="supervisor-strategy-none",
    ),
    # Supervisor(max_restarts=...): an int >= 0, or None.
    pytest.param(
        bad_supervisor(max_restarts=True), TypeError, r"max_restarts must be an int, got True",
        id="supervisor-max_restarts-bool",
    ),
    pytest.param(
        bad_supervisor(max_restarts=3.0), TypeError, r"max_restarts must be an int, got 3\.0",
        id="supervisor-max_restarts-float",
    ),
    pytest.param(
        bad_supervisor(max_restarts="3"), TypeError, r"max_restarts must be an int, got '3'",
        id="supervisor-max_restarts-str",
    ),
    pytest.param(
        bad_supervisor(max_restarts=-1), ValueError, r"max_restarts must be >= 0, got -1",
        id="supervisor-max_restarts-negative",
    ),
    # Supervisor(max_seconds=...): a finite number > 0.
    pytest.param(
        bad_supervisor(max_seconds=0), ValueError, r"max_seconds must be a finite number.*got 0",
        id="supervisor-max_seconds-zero",
    ),
    pytest.param(
        bad_supervisor(max_seconds=-1.0), ValueError, r"max_seconds.*got -1\.0",
        id="supervisor-max_seconds-negative",
    ),
    pytest.param(
        bad_supervisor(max_seconds=INF), ValueError, r"max_seconds.*got inf",
        id="supervisor-max_seconds-inf",
    ),
    pytest.param(
        bad_supervisor(max_seconds=NAN), ValueError, r"max_seconds.*got nan",
        id="supervisor-max_seconds-nan",
    ),
    pytest.param(
        bad_supervisor(max_seconds="5"), TypeError, r"max_seconds must be an int or a float.*'5'",
        id="supervisor-max_seconds-str",
    ),
    pytest.param(
        bad_supervisor(max_seconds=True), TypeError, r"max_seconds.*got True",
        id="supervisor-max_seconds-bool",
    ),
    pytest.param(
        bad_supervisor(max_seconds=None), TypeError, r"max_seconds.*got None",
        id="supervisor-max_seconds-none",
    ),
]

#    <<< END OF THE BLOCK READY TO PASTE <<<


@pytest.mark.parametrize(("call", "error", "message"), STRATEGY_BAD_CALLS)
def test_bad_strategy_or_restart_intensity_raises_naming_the_parameter_and_value(
    call: Callable[[Supervisor], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(Supervisor(logger=own_logger("badinput-strategies")))


def test_the_bad_input_entries_have_unique_ids() -> None:
    assert len({case.id for case in STRATEGY_BAD_CALLS}) == len(STRATEGY_BAD_CALLS)
    assert math.isnan(NAN)
    assert math.isinf(INF)
