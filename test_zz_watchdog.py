"""The stall watchdog and the systemd notifications (issue #13), as tests.

1. ``heartbeat()``: what it does on a supervised thread, and that it does nothing
   anywhere else.
2. ``ProcessOption(heartbeat_timeout=...)``: a run silent for longer is STALLED, with one
   ``ProcessStalled`` event and an ERROR line naming where it waits; a heartbeat makes it
   RUNNING again and logs that it resumed; a fatal one shuts the supervisor down. One
   watchdog thread, only when some process has a timeout, gone with the supervisor.
3. systemd: against a real AF_UNIX datagram socket bound here (a path, and an abstract
   address), read on a thread: READY=1 once, STOPPING=1 when the shutdown begins,
   WATCHDOG=1 at half of WATCHDOG_USEC and none while a process is stalled; nothing
   without NOTIFY_SOCKET, with ``systemd_notify=False``, with ``handle_signals=False``
   or from a nested supervisor; a failing send is logged once.
4. The demo's ``--stall``, run as a user would.

The helpers come from test_supervisor.py, imported by name (its two autouse fixtures
among them, which importing activates here too). The timing rules are that module's: every wait is
bounded, and the only durations asserted are generous. Where the test must show that
something does NOT happen (no stall while heartbeats come, no ping while a process is
stalled) it watches for a fixed window, several times the period in question; what was
measured goes into the assertion messages.

How the tests know what was sent before a point in time: a datagram socket's queue is
first in, first out, so ``NotifySocket.mark()`` sends a marker into it and waits for it
to come out: every datagram the supervisor sent before the call comes out before it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import re
import shutil
import signal
import socket
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import supervisor
from supervisor import (
    ExitCode,
    ProcessLifecycle,
    ProcessOption,
    ProcessStalled,
    ProcessStarted,
    ShutdownCause,
    ShutdownReport,
    ShutdownStarted,
    Supervisor,
    SupervisorEvent,
    TerminateChannel,
    heartbeat,
)
from test_supervisor import (  # the fixtures: pytest finds them here once imported
    AT_ONCE,
    BOUND,
    CHILD_BOUND,
    FAST,
    LONG,
    PROCESS_BOUND,
    SHUTTING_DOWN,
    EventLog,
    Harness,
    RecordingHandler,
    Scripted,
    StartChild,
    bad_option,
    bad_supervisor,
    bounded_report,
    call_anyway,
    child,  # noqa: F401
    extra,
    finite_number,
    no_go_words_logged,  # noqa: F401
    no_thread_left_behind,  # noqa: F401
    own_logger,
    threads_of,
    unique_prefix,
    until_finished,
    wait_until,
    watchdog,
)
from test_supervisor import (
    test_bad_input_raises_at_once_naming_the_problem as bad_input_check,
)

WATCHDOG_THREAD = "supervisor-watchdog"
"""The name of the one watchdog thread of a supervisor."""

TIMEOUT = 0.2
"""The heartbeat_timeout of the acceptance tests (issue #13)."""

BEAT_EVERY = 0.05
"""How often a beating process sends a heartbeat: a quarter of TIMEOUT."""

QUIET_WINDOW = 3 * TIMEOUT
"""How long a test watches for something that must NOT happen (a second stall event)."""

SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

SIGNALLED = "signalled"
"""What a ``drive()`` of ``wait_with_signals`` returns when it sent the stopping signal."""


@pytest.fixture(autouse=True)
def no_systemd_around(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without systemd's variables, whatever ran the tests (even systemd);
    the tests that want them set them with monkeypatch."""
    for name in SYSTEMD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------
# Helpers: a systemd notification socket, supervisors whose hung processes are released
# at the end, processes with a heartbeat, and a wait on the main thread with a driver.


class NotifySocket:
    """systemd's side of ``sd_notify``: an AF_UNIX datagram socket bound at a path or an
    abstract address (``@name``), read on a thread, so that its queue never fills."""

    _MARK = "test-mark "
    _END = "test-end"

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET gives it
        self._bound = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self._bound)
        self._condition = threading.Condition()
        self._received: list[tuple[float, str]] = []  # (time.monotonic(), datagram)
        self._marks = itertools.count()
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            data = self._socket.recv(65536).decode()
            if data == self._END:
                return
            with self._condition:
                self._received.append((time.monotonic(), data))
                self._condition.notify_all()

    def _send(self, text: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.settimeout(BOUND)
            sender.sendto(text.encode(), self._bound)

    def close(self) -> None:
        self._send(self._END)
        self._reader.join(BOUND)
        self._socket.close()

    @property
    def received(self) -> list[tuple[float, str]]:
        """Every datagram so far, markers included, with the time it was read."""
        with self._condition:
            return list(self._received)

    @property
    def messages(self) -> list[str]:
        """Every datagram so far but the markers."""
        return [text for _, text in self.received if not text.startswith(self._MARK)]

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = BOUND) -> bool:
        """Whether ``predicate(messages)`` holds in time."""
        with self._condition:
            return self._condition.wait_for(lambda: predicate(self.messages), timeout)

    def wait_for_count(self, prefix: str, count: int = 1, timeout: float = BOUND) -> None:
        arrived = self.wait_for(
            lambda messages: sum(m.startswith(prefix) for m in messages) >= count, timeout
        )
        assert arrived, f"no {count} {prefix!r} within {timeout} s: {self.messages}"

    def mark(self) -> str:
        """Send a marker and wait until it comes out of the queue: every datagram sent
        before this call has been read by then. Returns the marker."""
        marker = f"{self._MARK}{next(self._marks)}"
        self._send(marker)
        with self._condition:
            arrived = self._condition.wait_for(
                lambda: any(text == marker for _, text in self._received), BOUND
            )
        assert arrived, f"the marker {marker!r} did not come back"
        return marker

    def between(self, first: str | None, last: str | None) -> list[str]:
        """The messages after marker ``first`` (None: from the start) and before marker
        ``last`` (None: to the end)."""
        texts = [text for _, text in self.received]
        begin = 0 if first is None else texts.index(first) + 1
        end = len(texts) if last is None else texts.index(last)
        return [text for text in texts[begin:end] if not text.startswith(self._MARK)]

    def times_of(self, prefix: str) -> list[float]:
        return [when for when, text in self.received if text.startswith(prefix)]


_ABSTRACT = itertools.count()


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., NotifySocket]]:
    """Binds a NotifySocket (``kind`` "path" or "abstract") and, unless ``export`` is
    False, points NOTIFY_SOCKET at it; every one is closed at the end."""
    made: list[NotifySocket] = []
    directory = tempfile.mkdtemp(prefix="sdn-")  # short: a socket path has 107 bytes at most

    def bind(kind: str = "path", *, export: bool = True) -> NotifySocket:
        if kind == "path":
            address = os.path.join(directory, f"notify{len(made)}")
        else:
            address = f"@supervisor-test-{os.getpid()}-{next(_ABSTRACT)}"
        made.append(NotifySocket(address))
        if export:
            monkeypatch.setenv("NOTIFY_SOCKET", address)
        return made[-1]

    try:
        yield bind
    finally:
        for each in made:
            each.close()
        shutil.rmtree(directory, ignore_errors=True)


class TimedEvents(EventLog):
    """An EventLog that also keeps when each event arrived (time.monotonic())."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[float, SupervisorEvent]] = []

    def __call__(self, event: SupervisorEvent) -> None:
        self.times.append((time.monotonic(), event))  # (list.append is atomic)
        super().__call__(event)

    def time_of(self, kind: type[object], name: str) -> float:
        return next(
            when
            for when, e in self.times
            if isinstance(e, kind) and getattr(e, "process_name", None) == name
        )


@dataclasses.dataclass
class Timed(Harness):
    events: TimedEvents


class Maker:
    """Makes supervisors for a test (``new``) and, at its end, releases what the test's
    processes wait on (``hold``), then shuts every supervisor down."""

    def __init__(self, test_name: str) -> None:
        self._test_name = test_name
        self._made: list[Timed] = []
        self._held: list[threading.Event] = []

    def new(self, shutdown_timeout: float = BOUND, *, systemd_notify: bool = True) -> Timed:
        handler = RecordingHandler()
        logger = own_logger(f"{self._test_name}.{len(self._made)}", handler)
        events = TimedEvents()
        sup = Supervisor(
            shutdown_timeout, logger, on_event=events, systemd_notify=systemd_notify
        )
        self._made.append(Timed(sup, events, handler, logger))
        return self._made[-1]

    def hold(self, event: threading.Event) -> threading.Event:
        self._held.append(event)
        return event

    def close(self) -> None:
        for event in self._held:
            event.set()
        for harness in reversed(self._made):
            harness.sup.shutdown()
            with contextlib.suppress(RuntimeError):
                harness.sup.wait_on_shutdown_signal(handle_signals=False)
            for handler in list(harness.logger.handlers):
                harness.logger.removeHandler(handler)


@pytest.fixture
def make(request: pytest.FixtureRequest) -> Iterator[Maker]:
    maker = Maker(request.node.name)
    try:
        yield maker
    finally:
        maker.close()


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WATCHDOG_THREAD]


def state_of(sup: Supervisor, name: str) -> ProcessLifecycle:
    return sup.status()[name].state


def wait_for_state(sup: Supervisor, name: str, state: ProcessLifecycle) -> None:
    """Poll status() (no event announces a state), bounded."""
    assert wait_until(lambda: state_of(sup, name) is state), (
        f"{name!r} is {state_of(sup, name)}, not {state}, after {BOUND} s"
    )


def wait_with_signals(
    sup: Supervisor, drive: Callable[[], object], *, run: bool = False
) -> ShutdownReport:
    """On this (pytest's main) thread, ``sup.run()`` (``run=True``) or
    ``sup.wait_on_shutdown_signal()``, both handling signals, while ``drive()`` runs on a
    helper thread; when it ends it calls ``sup.shutdown()``, unless it returned
    ``SIGNALLED`` (it sent a signal that starts the shutdown: a watchdog shuts down after
    BOUND if it did not). An exception of ``drive()`` (a failed assertion) is raised
    here, after the report."""
    failures: list[BaseException] = []

    def driver() -> None:
        try:
            if drive() is SIGNALLED:
                return
        except BaseException as exc:
            failures.append(exc)
        sup.shutdown()

    thread = threading.Thread(target=driver, name="test-driver", daemon=True)
    thread.start()
    try:
        with watchdog(sup, BOUND):
            report = sup.run() if run else sup.wait_on_shutdown_signal()
    finally:
        thread.join(BOUND)
    assert not thread.is_alive(), "the driver did not end"
    if failures:
        raise failures[0]
    return report


class Beater:
    """A process with a heartbeat, in three acts: it beats every ``every`` seconds for
    ``beats_for`` seconds; then it is silent in ``waits_without_a_heartbeat()`` until
    ``go_on`` is set; then it sends one heartbeat, looks at its own state, and beats
    until its finish signal. It records what the test checks."""

    def __init__(self, sup: Supervisor, every: float = BEAT_EVERY, beats_for: float = 1.0
                 ) -> None:
        self.sup, self.every, self.beats_for = sup, every, beats_for
        self.beats: list[tuple[float, float]] = []  # (just before, just after) heartbeat()
        self.states_while_beating: list[ProcessLifecycle] = []
        self.silent = threading.Event()  # set right after the last heartbeat of act 1
        self.go_on = threading.Event()
        self.resumed = threading.Event()
        self.state_after_one_beat: ProcessLifecycle | None = None

    def _beat(self) -> None:
        """Below the process's function, as a real process would call it."""
        before = time.monotonic()
        heartbeat()
        self.beats.append((before, time.monotonic()))

    def __call__(
        self, finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        end = time.monotonic() + self.beats_for
        while True:
            self._beat()
            self.states_while_beating.append(state_of(self.sup, name))
            if time.monotonic() >= end:
                break
            if finish_signal.wait(self.every):
                return None
        self.silent.set()
        self.waits_without_a_heartbeat()
        heartbeat()
        self.state_after_one_beat = state_of(self.sup, name)
        self.resumed.set()
        while not finish_signal.wait(self.every):
            heartbeat()
        return None

    def waits_without_a_heartbeat(self) -> None:
        self.go_on.wait(PROCESS_BOUND)  # the line a ProcessStalled stack must show

    def longest_silence(self) -> float:
        """An upper bound of the longest time between two heartbeats of act 1."""
        return max(
            (after - before for (before, _), (_, after) in itertools.pairwise(self.beats)),
            default=0.0,
        )


def silent_process(
    gate: threading.Event, then_return: bool = False
) -> Callable[[threading.Event, str, TerminateChannel], Exception | None]:
    """A process that never beats: it waits for ``gate`` (or its finish signal) in
    ``waits_for_its_gate()``, then returns None (``then_return``) or waits to finish."""

    def waits_for_its_gate(finish_signal: threading.Event) -> None:
        while not gate.wait(0.01) and not finish_signal.is_set():
            pass

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        waits_for_its_gate(finish_signal)
        if not then_return:
            finish_signal.wait(PROCESS_BOUND)
        return None

    return process


def beating(every: float = BEAT_EVERY) -> Callable[
    [threading.Event, str, TerminateChannel], Exception | None
]:
    """A process that beats every ``every`` seconds until its finish signal."""

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        heartbeat()
        while not finish_signal.wait(every):
            heartbeat()
        return None

    return process


def option(timeout: float | None = TIMEOUT, *, is_fatal: bool = False) -> ProcessOption:
    return ProcessOption(
        retry_interval=0.001, recover_interval=0.001, is_fatal=is_fatal, heartbeat_timeout=timeout
    )


# ---------------------------------------------------------------------------
# 1. heartbeat()


def test_heartbeat_is_exported() -> None:
    assert "heartbeat" in supervisor.__all__
    assert "ProcessStalled" in supervisor.__all__
    assert ProcessLifecycle.STALLED.value == "stalled"
    assert ProcessOption().heartbeat_timeout is None


def test_heartbeat_on_an_unsupervised_thread_does_nothing_and_raises_nothing() -> None:
    assert heartbeat() is None  # type: ignore[func-returns-value]  # pytest's main thread
    outcome: list[object] = []

    def elsewhere() -> None:
        try:
            outcome.append(heartbeat())  # type: ignore[func-returns-value]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=elsewhere, name="not-supervised")
    thread.start()
    thread.join(BOUND)
    assert outcome == [None]


def test_a_heartbeat_from_another_thread_keeps_no_process_alive(make: Maker) -> None:
    """Only the process's own thread counts: neither the test's thread nor a thread
    the process starts itself keeps it from stalling."""
    w = make.new()
    name = unique_prefix("hb") + "helped"
    stop = make.hold(threading.Event())

    def helper() -> None:
        while not stop.wait(0.01):
            heartbeat()

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        thread = threading.Thread(target=helper, name=f"{name}-helper")
        thread.start()
        finish_signal.wait(PROCESS_BOUND)
        stop.set()
        thread.join(BOUND)
        return None

    w.sup.register(name, process, option())
    w.sup.start()
    deadline = time.monotonic() + BOUND
    while not w.events.of(ProcessStalled, name) and time.monotonic() < deadline:
        heartbeat()  # from the test's thread: nothing
        time.sleep(0.01)
    (stalled,) = w.events.wait_for(ProcessStalled, name)
    assert stalled.silent_for >= TIMEOUT
    assert w.stop().exit_code is ExitCode.OK


def test_heartbeat_takes_no_lock_that_supervision_holds(make: Maker) -> None:
    """heartbeat() returns while another thread holds the supervisor's lock (a private
    seam, ``_lock``: the lock status(), register() and the restarts take)."""
    w = make.new()
    name = unique_prefix("hb") + "locked-out"
    entered, locked, beaten = threading.Event(), threading.Event(), threading.Event()

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        entered.set()
        locked.wait(PROCESS_BOUND)
        for _ in range(3):
            heartbeat()
        beaten.set()
        finish_signal.wait(PROCESS_BOUND)
        return None

    w.sup.register(name, process, option(LONG))
    w.sup.start()
    assert entered.wait(BOUND)  # (the run began: the supervision loop is out of the lock)
    lock = w.sup._lock
    with lock:
        locked.set()
        done = beaten.wait(AT_ONCE)
    assert done, "heartbeat() waited for the supervisor's lock"
    assert w.stop().exit_code is ExitCode.OK


def test_heartbeat_costs_well_under_a_microsecond_a_loose_check(make: Maker) -> None:
    """A sanity bound, 200 times the budget (the benchmark measures the cost itself):
    100,000 heartbeats on a supervised thread and on an unsupervised one, each in 2 s."""
    w = make.new()
    name = unique_prefix("hb") + "busy"
    spent: list[float] = []

    def many() -> float:
        began = time.perf_counter()
        for _ in range(100_000):
            heartbeat()
        return time.perf_counter() - began

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        spent.append(many())
        finish_signal.wait(PROCESS_BOUND)
        return None

    w.sup.register(name, process, option(LONG))
    w.sup.start()
    assert wait_until(lambda: bool(spent))
    unsupervised = many()
    assert spent[0] < AT_ONCE, spent
    assert unsupervised < AT_ONCE, unsupervised
    assert w.stop().exit_code is ExitCode.OK


# ---------------------------------------------------------------------------
# 2. heartbeat_timeout: stalled, resumed, fatal; the one watchdog thread


def test_a_beating_process_is_never_stalled_a_silent_one_is_and_one_beat_resumes_it(
    make: Maker,
) -> None:
    """The acceptance test of issue #13: heartbeat_timeout=0.2, a heartbeat every 0.05 s
    for 1 s, then silence. Another process's far deadline (60 s) does not delay it."""
    w = make.new()
    name, far = unique_prefix("hb") + "beater", unique_prefix("hb") + "far"
    beater = Beater(w.sup)
    make.hold(beater.go_on)
    w.sup.register(far, beating(), option(LONG))
    w.sup.register(name, beater, option())
    w.sup.start()

    # Act 1: beating. Never stalled, unless the machine really kept the thread silent.
    assert beater.silent.wait(BOUND), "the beater did not finish beating"
    silent_since = time.monotonic()
    last_before = beater.beats[-1][0]
    longest = beater.longest_silence()
    early = [
        e for when, e in w.events.times if isinstance(e, ProcessStalled) and when < silent_since
    ]
    assert not early or longest >= TIMEOUT, (early, f"longest silence {longest:.3f} s")
    assert set(beater.states_while_beating) == {ProcessLifecycle.RUNNING}, (
        beater.states_while_beating, f"longest silence {longest:.3f} s"
    )
    assert len(beater.beats) >= 5

    # Act 2: silent. STALLED, one event, no earlier than the timeout after the last beat.
    (stalled,) = w.events.wait_for(ProcessStalled, name)
    arrived = w.events.time_of(ProcessStalled, name)
    lateness = arrived - last_before - TIMEOUT
    assert arrived - last_before >= TIMEOUT, f"stalled {-lateness:.3f} s early"
    assert stalled.silent_for >= TIMEOUT, stalled
    assert stalled.silent_for < TIMEOUT + BOUND, f"{stalled}; lateness {lateness:.3f} s"
    assert state_of(w.sup, name) is ProcessLifecycle.STALLED, f"lateness {lateness:.3f} s"
    assert "waits_without_a_heartbeat" in stalled.stack, stalled.stack
    assert "self.go_on.wait(PROCESS_BOUND)" in stalled.stack, stalled.stack
    time.sleep(QUIET_WINDOW)  # watching: no second event while it stays stalled
    assert len(w.events.of(ProcessStalled, name)) == 1, w.events.of(ProcessStalled)
    assert state_of(w.sup, name) is ProcessLifecycle.STALLED
    # Reported, not restarted; a non-fatal stall stops nothing.
    assert len(w.events.of(ProcessStarted, name)) == 1
    assert not w.events.of(ShutdownStarted)
    assert state_of(w.sup, far) is ProcessLifecycle.RUNNING

    # Act 3: one heartbeat, and it is RUNNING again.
    beater.go_on.set()
    assert beater.resumed.wait(BOUND)
    assert beater.state_after_one_beat is ProcessLifecycle.RUNNING
    assert state_of(w.sup, name) is ProcessLifecycle.RUNNING
    assert w.logs.wait_for_message(f"process {name!r} resumed: a heartbeat after ")
    assert len(w.events.of(ProcessStalled, name)) == 1
    assert not w.events.of(ProcessStalled, far)
    report = w.stop()
    assert report.exit_code is ExitCode.OK
    assert set(report.finished) == {name, far}


def test_the_stall_is_logged_as_an_error_naming_the_process_its_silence_and_its_stack(
    make: Maker,
) -> None:
    w = make.new()
    name = unique_prefix("hb") + "logged"
    gate = make.hold(threading.Event())
    w.sup.register(name, silent_process(gate), option())
    w.sup.start()
    (stalled,) = w.events.wait_for(ProcessStalled, name)
    prefix = f"process {name!r} stalled: no heartbeat for "
    assert w.logs.wait_for_message(prefix)
    (record,) = [r for r in w.logs.records if r.getMessage().startswith(prefix)]
    assert record.levelname == "ERROR"
    message = record.getMessage()
    assert re.match(re.escape(prefix) + r"0\.\d+ s; it is stuck at:\n", message), message
    silence = float(message[len(prefix):].split(" s;")[0])
    assert silence >= TIMEOUT
    assert "waits_for_its_gate" in message, message
    assert "gate.wait(0.01)" in message, message
    assert extra(record, "process_name") == name
    assert extra(record, "stack") == stalled.stack
    gate.set()
    assert w.stop().exit_code is ExitCode.OK


def test_the_resumed_line_is_a_warning_naming_the_process_and_its_silence(
    make: Maker,
) -> None:
    w = make.new()
    name = unique_prefix("hb") + "back"
    beater = Beater(w.sup, beats_for=0.0)
    make.hold(beater.go_on)
    w.sup.register(name, beater, option())
    w.sup.start()
    w.events.wait_for(ProcessStalled, name)
    beater.go_on.set()
    prefix = f"process {name!r} resumed: a heartbeat after "
    assert w.logs.wait_for_message(prefix)
    (record,) = [r for r in w.logs.records if r.getMessage().startswith(prefix)]
    assert record.levelname == "WARNING"
    assert re.fullmatch(re.escape(prefix) + r"\d+(\.\d+)? s", record.getMessage())
    assert float(record.getMessage()[len(prefix):-2]) >= TIMEOUT
    assert extra(record, "process_name") == name
    assert w.stop().exit_code is ExitCode.OK


def test_a_stalled_fatal_process_shuts_the_supervisor_down_saying_it_stalled(
    make: Maker,
) -> None:
    w = make.new()
    name, other = unique_prefix("hb") + "fatal", unique_prefix("hb") + "bystander"
    w.sup.register(other, until_finished, option(None))
    w.sup.register(name, silent_process(make.hold(threading.Event())), option(is_fatal=True))
    w.sup.start()
    report = bounded_report(w.sup, BOUND)
    assert report.cause is ShutdownCause.FATAL_PROCESS, report
    assert report.exit_code is ExitCode.FATAL
    assert report.process_name == name
    assert re.fullmatch(
        rf"fatal process {re.escape(repr(name))} stalled: no heartbeat for \d+(\.\d+)? s",
        report.reason,
    ), report.reason
    assert set(report.finished) == {name, other}  # it returned once told to finish
    (started,) = w.events.of(ShutdownStarted)
    assert started.reason == report.reason
    assert started.cause is ShutdownCause.FATAL_PROCESS
    assert len(w.events.of(ProcessStalled, name)) == 1
    prefix = f"process {name!r} stalled: no heartbeat for "
    (line,) = [m for m in w.logs.messages(name) if m.startswith(prefix)]
    assert "; shutting down; it is stuck at:\n" in line, line
    assert SHUTTING_DOWN.search(" ".join(w.logs.messages())), w.logs.messages()


def test_a_stalled_process_that_returns_is_finished_not_stalled(make: Maker) -> None:
    w = make.new()
    name = unique_prefix("hb") + "returns"
    gate = make.hold(threading.Event())
    w.sup.register(name, silent_process(gate, then_return=True), option())
    w.sup.start()
    w.events.wait_for(ProcessStalled, name)
    assert state_of(w.sup, name) is ProcessLifecycle.STALLED
    gate.set()
    wait_for_state(w.sup, name, ProcessLifecycle.FINISHED)
    assert w.stop().exit_code is ExitCode.OK


def test_the_silence_counts_from_the_start_of_each_run(make: Maker) -> None:
    """Runs that each last less than the timeout, without a heartbeat, never stall, even
    when together they last much longer: each run starts its own count."""
    w = make.new()
    name = unique_prefix("hb") + "short-runs"
    timeout, run_for, runs = 0.5, 0.2, 4

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        began = time.monotonic()
        finish_signal.wait(run_for)
        return RuntimeError(f"ran {time.monotonic() - began:.3f} s")

    options = ProcessOption(
        retry_count=runs, retry_interval=0.001, is_fatal=False, heartbeat_timeout=timeout
    )
    w.sup.register(name, process, options)
    w.sup.start()
    wait_for_state(w.sup, name, ProcessLifecycle.FAILED)  # gave up after the runs
    errors = [str(getattr(e, "error", "")) for e in w.events.events]
    assert not w.events.of(ProcessStalled), errors
    assert len(w.events.of(ProcessStarted, name)) == runs
    assert w.stop().exit_code is ExitCode.OK


def test_one_watchdog_thread_only_when_a_process_has_a_heartbeat_timeout(make: Maker) -> None:
    """None for processes without a timeout; one, however many have one, started by
    register() after start() too; gone once the report is out."""
    w = make.new()
    prefix = unique_prefix("hb")
    w.sup.register(prefix + "plain", Scripted(), option(None))
    w.sup.start()
    assert wait_until(lambda: state_of(w.sup, prefix + "plain") is ProcessLifecycle.RUNNING)
    assert watchdog_threads() == []

    w.sup.register(prefix + "beats", beating(), option(LONG))
    w.sup.register(prefix + "beats-too", beating(), option(LONG))
    threads = watchdog_threads()
    assert len(threads) == 1, threads
    assert threads[0].daemon

    report = w.stop()
    assert report.exit_code is ExitCode.OK
    threads[0].join(BOUND)
    assert not threads[0].is_alive()
    assert watchdog_threads() == []


def test_no_watchdog_thread_without_a_heartbeat_timeout_under_a_whole_run(make: Maker) -> None:
    w = make.new()
    seen: list[list[threading.Thread]] = []

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        seen.append(watchdog_threads())
        finish_signal.wait(PROCESS_BOUND)
        return None

    w.sup.register(unique_prefix("hb") + "plain", process, option(None))
    w.sup.start()
    assert wait_until(lambda: bool(seen))
    assert seen == [[]]
    assert w.stop().exit_code is ExitCode.OK
    assert watchdog_threads() == []


def test_a_process_registered_later_with_a_short_timeout_is_watched_at_once(
    make: Maker,
) -> None:
    """The watchdog sleeps until the earliest deadline (60 s away here): a new process
    with a nearer one wakes it."""
    w = make.new()
    prefix = unique_prefix("hb")
    w.sup.register(prefix + "far", beating(), option(LONG))
    w.sup.start()
    assert wait_until(lambda: len(watchdog_threads()) == 1)
    w.sup.register(prefix + "near", silent_process(make.hold(threading.Event())), option())
    (stalled,) = w.events.wait_for(ProcessStalled, prefix + "near")
    assert stalled.silent_for < LONG
    assert w.stop().exit_code is ExitCode.OK


class CountingEvent(threading.Event):
    """A threading.Event that counts its waits: each is one wake-up of the watchdog."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_the_watchdog_sleeps_until_the_deadline_instead_of_polling(make: Maker) -> None:
    """While processes beat every 5 ms with a 60 s timeout, the watchdog wakes a few
    times at most in a second, not at a fixed rate (a private seam: it waits on
    ``_watchdog_wakeup``, replaced here by a counting one)."""
    w = make.new()
    counting = CountingEvent()
    w.sup._watchdog_wakeup = counting
    prefix = unique_prefix("hb")
    for index in range(3):
        w.sup.register(f"{prefix}{index}", beating(0.005), option(LONG))
    w.sup.start()
    assert wait_until(lambda: counting.waits >= 1)
    time.sleep(1.0)  # watching: how often does it wake?
    assert counting.waits <= 5, f"the watchdog woke {counting.waits} times in 1 s"
    assert w.stop().exit_code is ExitCode.OK


# ---------------------------------------------------------------------------
# 3. systemd notifications


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_once_after_start_and_stopping_when_the_shutdown_begins(
    make: Maker, notify_socket: Callable[..., NotifySocket], kind: str
) -> None:
    """READY=1 and STATUS= in one datagram, once; STOPPING=1 with the reason when the
    shutdown begins: before a process that waits for it returns."""
    notify = notify_socket(kind)
    w = make.new()
    prefix = unique_prefix("sd")
    saw_stopping: list[bool] = []

    def waits_for_stopping(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait(PROCESS_BOUND)
        saw_stopping.append(notify.wait_for(lambda m: any("STOPPING=1" in x for x in m), AT_ONCE))
        return None

    w.sup.register(prefix + "a", until_finished)
    w.sup.register(prefix + "b", waits_for_stopping)
    w.sup.start()

    def drive() -> str:
        notify.wait_for_count("READY=1")
        os.kill(os.getpid(), signal.SIGTERM)
        return SIGNALLED

    report = wait_with_signals(w.sup, drive)
    notify.mark()
    assert report.exit_code is ExitCode.OK, report
    assert report.cause is ShutdownCause.SIGNAL
    assert saw_stopping == [True], "STOPPING=1 came only after the processes returned"
    ready, stopping = notify.messages
    assert ready == "READY=1\nSTATUS=running 2 processes"
    assert stopping.startswith("STOPPING=1\nSTATUS=shutting down (received signal SIGTERM): ")
    assert "\n" not in stopping.split("\n", 1)[1]
    assert SHUTTING_DOWN.fullmatch(stopping.split("STATUS=", 1)[1]), stopping


def test_run_sends_ready_once_every_process_thread_has_started(
    make: Maker, notify_socket: Callable[..., NotifySocket]
) -> None:
    notify = notify_socket()
    w = make.new()
    names = [unique_prefix("sd") + str(index) for index in range(4)]
    for name in names:
        w.sup.register(name, until_finished)
    threads_at_ready: list[int] = []

    def drive() -> None:
        notify.wait_for_count("READY=1")
        threads_at_ready.append(len(threads_of(names)))

    report = wait_with_signals(w.sup, drive, run=True)
    notify.mark()
    assert report.exit_code is ExitCode.OK
    assert threads_at_ready == [4]
    assert notify.messages[0] == "READY=1\nSTATUS=running 4 processes"
    assert [m.split("\n")[0] for m in notify.messages] == ["READY=1", "STOPPING=1"]
    assert "shutdown() was called" in notify.messages[1]


def test_watchdog_pings_come_every_half_of_watchdog_usec(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG_USEC=1 s (WATCHDOG_PID this process): a ping at about every 0.5 s, after
    READY=1. Asserted loosely: faster than systemd's 1 s, not much faster than 0.5 s."""
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    w = make.new()
    w.sup.register(unique_prefix("sd") + "plain", until_finished)
    w.sup.start()
    threads: list[int] = []

    def drive() -> None:
        notify.wait_for_count("WATCHDOG=1", 4)
        threads.append(len(watchdog_threads()))

    report = wait_with_signals(w.sup, drive)
    assert report.exit_code is ExitCode.OK
    assert threads == [1]  # the pings alone start the watchdog thread
    messages = notify.messages
    assert messages[0].startswith("READY=1\n")
    assert set(messages[1:-1]) == {"WATCHDOG=1"}, messages
    pings = notify.times_of("WATCHDOG=1")[:4]
    mean = (pings[-1] - pings[0]) / (len(pings) - 1)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(pings)]
    assert 0.4 <= mean < 0.95, f"a ping every {mean:.3f} s on average: {gaps}"


def test_watchdog_pings_stop_while_a_process_is_stalled_and_come_back_after(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 0.05 s
    w = make.new()
    name = unique_prefix("sd") + "stalls"
    beater = Beater(w.sup, every=0.02, beats_for=0.3)
    make.hold(beater.go_on)
    w.sup.register(name, beater, option(0.3))
    w.sup.start()
    marks: list[str] = []

    def drive() -> None:
        notify.wait_for_count("WATCHDOG=1", 2)
        w.events.wait_for(ProcessStalled, name)
        marks.append(notify.mark())  # every ping sent before the stall is behind it
        time.sleep(0.5)  # watching: 10 ping periods
        marks.append(notify.mark())
        pings = notify.messages.count("WATCHDOG=1")
        beater.go_on.set()
        assert beater.resumed.wait(BOUND)
        assert notify.wait_for(lambda m: m.count("WATCHDOG=1") > pings), (
            "the pings did not come back after the heartbeat"
        )

    report = wait_with_signals(w.sup, drive)
    assert report.exit_code is ExitCode.OK
    during = notify.between(marks[0], marks[1])
    assert "WATCHDOG=1" not in during, f"pings while stalled: {during}"
    before = notify.between(None, marks[0])
    assert before.count("WATCHDOG=1") >= 2
    assert notify.between(marks[1], None).count("WATCHDOG=1") >= 1


def test_no_pings_when_watchdog_pid_is_another_process(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    w = make.new()
    w.sup.register(unique_prefix("sd") + "plain", until_finished)
    w.sup.start()
    threads: list[int] = []

    def drive() -> None:
        notify.wait_for_count("READY=1")
        time.sleep(0.3)  # watching: 6 ping periods
        threads.append(len(watchdog_threads()))

    report = wait_with_signals(w.sup, drive)
    notify.mark()
    assert report.exit_code is ExitCode.OK
    assert threads == [0]
    assert [m.split("\n")[0] for m in notify.messages] == ["READY=1", "STOPPING=1"]


def sends_nothing_check(
    w: Timed, notify: NotifySocket, drive_first: Callable[[], None] | None = None
) -> None:
    """Run w.sup on the main thread handling signals, watching for 6 ping periods
    (WATCHDOG_USEC=100000), then shut it down: nothing may arrive, no thread may ping."""
    name = unique_prefix("sd") + "plain"
    started = threading.Event()

    def process(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        started.set()
        finish_signal.wait(PROCESS_BOUND)
        return None

    w.sup.register(name, process)
    threads: list[int] = []

    def drive() -> None:
        assert started.wait(BOUND)
        time.sleep(0.3)  # watching: 6 ping periods
        threads.append(len(watchdog_threads()))

    report = wait_with_signals(w.sup, drive, run=True)
    notify.mark()
    assert report.exit_code is ExitCode.OK
    assert threads == [0]
    assert notify.messages == []
    assert not [m for m in w.logs.messages() if "notify" in m]


def test_systemd_notify_false_sends_nothing(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    sends_nothing_check(make.new(systemd_notify=False), notify)


def test_without_notify_socket_nothing_is_sent(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = notify_socket(export=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    assert "NOTIFY_SOCKET" not in os.environ
    sends_nothing_check(make.new(), notify)


def test_a_supervisor_waited_on_without_handling_signals_sends_nothing(
    make: Maker, notify_socket: Callable[..., NotifySocket], monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    w = make.new()
    name = unique_prefix("sd") + "plain"
    scripted = Scripted()
    w.sup.register(name, scripted)
    w.sup.start()
    scripted.wait_runs(1)
    assert watchdog_threads() == []
    w.sup.shutdown()
    report = w.sup.wait_on_shutdown_signal(handle_signals=False)
    notify.mark()  # READY=1 and STOPPING=1 would have been sent by now
    assert report.exit_code is ExitCode.OK
    assert notify.messages == []


def test_a_nested_supervisor_sends_nothing_its_parent_does(
    make: Maker, notify_socket: Callable[..., NotifySocket]
) -> None:
    """The parent (one process: the child) sends READY=1 once; the child (two processes,
    one with a heartbeat) sends nothing."""
    notify = notify_socket()
    parent, nested = make.new(), make.new()
    prefix = unique_prefix("sd")
    scripted = Scripted()
    nested.sup.register(prefix + "inner", scripted, option(None))
    nested.sup.register(prefix + "inner-beats", beating(), option(LONG))
    parent.sup.register(prefix + "child", nested.sup.as_process(), FAST)

    def drive() -> None:
        scripted.wait_runs(1)
        nested.events.wait_for(ProcessStarted, prefix + "inner-beats")

    report = wait_with_signals(parent.sup, drive, run=True)
    notify.mark()
    assert report.exit_code is ExitCode.OK, report
    ready, stopping = notify.messages
    assert ready == "READY=1\nSTATUS=running 1 process"
    assert stopping.startswith("STOPPING=1\nSTATUS=shutting down (shutdown() was called): ")
    assert stopping.endswith(" for 1 process")


@pytest.mark.parametrize("where", ["a path", "an abstract address"])
def test_a_failing_send_is_logged_once_and_supervision_goes_on(
    make: Maker, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """NOTIFY_SOCKET names an address where nothing listens, and pings are due every
    10 ms: one WARNING, and the processes are supervised as before."""
    directory = tempfile.mkdtemp(prefix="sdn-")
    address = os.path.join(directory, "nobody") if where == "a path" else (
        f"@supervisor-test-nobody-{os.getpid()}-{next(_ABSTRACT)}"
    )
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    try:
        w = make.new()
        prefix = unique_prefix("sd")
        w.sup.register(prefix + "beats", beating(), option(LONG))
        w.sup.start()
        scripted = Scripted("return error")

        def drive() -> None:
            assert w.logs.wait_for_message("could not notify systemd at ")
            w.sup.register(prefix + "later", scripted, FAST)  # still supervising:
            scripted.wait_runs(2)  # a run, its failure and its retry

        report = wait_with_signals(w.sup, drive)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert report.exit_code is ExitCode.OK, report
    assert set(report.finished) == {prefix + "beats", prefix + "later"}
    warnings = [r for r in w.logs.records if "notify" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelname == "WARNING"
    assert warnings[0].getMessage().startswith("could not notify systemd at ")
    assert address.lstrip("@") in warnings[0].getMessage()


SYSTEMD_CHILD = textwrap.dedent(
    """
    import logging, sys, threading
    from supervisor import ProcessOption, Supervisor, heartbeat

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def beats(finish_signal, name, channel):
        heartbeat()
        while not finish_signal.wait(0.05):
            heartbeat()

    def plain(finish_signal, name, channel):
        finish_signal.wait(20)

    sup = Supervisor(shutdown_timeout=5.0)
    sup.register("beats", beats, ProcessOption(heartbeat_timeout=2.0))
    sup.register("plain", plain)
    report = sup.run()
    print("exit code", int(report.exit_code), flush=True)
    sys.exit(report.exit_code)
    """
)


def test_run_in_a_child_under_systemd_sends_ready_pings_and_stopping(
    child: StartChild,  # noqa: F811
    notify_socket: Callable[..., NotifySocket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end: python runs run() with NOTIFY_SOCKET and WATCHDOG_USEC (0.2 s) set,
    as systemd would start it; SIGTERM stops it, with STOPPING=1, and it exits 0."""
    notify = notify_socket()
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    proc = child("-c", SYSTEMD_CHILD)
    notify.wait_for_count("READY=1", timeout=CHILD_BOUND)
    notify.wait_for_count("WATCHDOG=1", 3, timeout=CHILD_BOUND)
    proc.send(signal.SIGTERM)
    assert proc.finish() == 0, proc.output
    notify.mark()
    messages = notify.messages
    assert messages[0] == "READY=1\nSTATUS=running 2 processes", messages
    assert messages[-1].startswith("STOPPING=1\nSTATUS=shutting down (received signal SIGTERM)")
    assert set(messages[1:-1]) == {"WATCHDOG=1"}, messages
    assert "stalled" not in proc.output
    assert "exit code 0" in proc.output


FATAL_STALL_CHILD = textwrap.dedent(
    """
    import logging, sys
    from supervisor import ProcessOption, Supervisor

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def hangs_without_a_heartbeat(finish_signal, name, channel):
        finish_signal.wait(20)

    sup = Supervisor(shutdown_timeout=5.0)
    sup.register("hangs", hangs_without_a_heartbeat, ProcessOption(heartbeat_timeout=0.2))
    report = sup.run()
    print("report:", report.cause.name, report.reason, flush=True)
    sys.exit(report.exit_code)
    """
)


def test_run_in_a_child_with_a_stalled_fatal_process_exits_1_saying_it_stalled(
    child: StartChild,  # noqa: F811
) -> None:
    proc = child("-c", FATAL_STALL_CHILD)
    assert proc.finish() == 1, proc.output
    assert "ERROR process 'hangs' stalled: no heartbeat for " in proc.output
    assert "hangs_without_a_heartbeat" in proc.output
    assert re.search(
        r"report: FATAL_PROCESS fatal process 'hangs' stalled: no heartbeat for [0-9.]+ s",
        proc.output,
    ), proc.output


# ---------------------------------------------------------------------------
# 4. The demo's worker beats; --stall makes it stall once


def test_example_demo_worker_stalls_and_resumes_with_stall(
    child: StartChild,  # noqa: F811
) -> None:
    demo = child("examples/demo.py", "--stall", "1.5")
    demo.wait_for_line(r"flaky-worker\s+job 2 hangs for 1\.5 s, without a heartbeat")
    demo.wait_for_line(r"process 'flaky-worker' stalled: no heartbeat for 1\.\d+ s")
    demo.wait_for_line(r"process 'flaky-worker' resumed: a heartbeat after 1\.\d+ s")
    demo.wait_for_line(r"flaky-worker\s+job 2 done")
    demo.send(signal.SIGINT)
    assert demo.finish() == 0, demo.output
    assert "finished:   http, stats, flaky-worker" in demo.output
    stalled_at = demo.output.index("stalled: no heartbeat")
    assert "finish_signal.wait(stall)" in demo.output[stalled_at:], demo.output


# ---------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError), (0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
        (math.inf, ValueError), (threading.TIMEOUT_MAX * 2, ValueError), (10**400, ValueError),
        ("1", TypeError), (True, TypeError), ([1.0], TypeError),
    ],
)
def test_a_bad_heartbeat_timeout_raises_naming_the_field(value: object, error: type) -> None:
    with pytest.raises(error, match=r"^ProcessOption\.heartbeat_timeout "):
        call_anyway(ProcessOption, heartbeat_timeout=value)


def test_a_heartbeat_timeout_out_of_range_says_the_range() -> None:
    expected = finite_number("ProcessOption.heartbeat_timeout", 0, low="1e-09")
    with pytest.raises(ValueError, match="^" + expected):
        ProcessOption(heartbeat_timeout=0)


def test_a_good_heartbeat_timeout_is_stored_as_a_float() -> None:
    assert ProcessOption(heartbeat_timeout=1).heartbeat_timeout == 1.0
    assert isinstance(ProcessOption(heartbeat_timeout=1).heartbeat_timeout, float)
    assert ProcessOption(heartbeat_timeout=1e-9).heartbeat_timeout == 1e-9
    assert ProcessOption(heartbeat_timeout=threading.TIMEOUT_MAX).heartbeat_timeout == (
        threading.TIMEOUT_MAX
    )


def test_systemd_notify_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        call_anyway(Supervisor, 5.0, None, None, "parallel", "one_for_one", None, 5.0, False)


def test_systemd_notify_must_be_a_bool() -> None:
    """As ProcessOption's recover and is_fatal: "no" would otherwise turn it ON."""
    with pytest.raises(TypeError, match=r"systemd_notify.*'no'"):
        call_anyway(Supervisor, systemd_notify="no")


# >>> For the table of bad calls of test_supervisor.py (BAD_CALLS): paste these entries.
# (The last, supervisor-systemd_notify-str, fails until Supervisor checks that
# systemd_notify is a bool, as it checks its other arguments.)
HEARTBEAT_BAD_CALLS = [
    pytest.param(
        bad_option(heartbeat_timeout=0),
        ValueError,
        r"heartbeat_timeout.*from 1e-09 .*got 0$",
        id="option-heartbeat_timeout-zero",
    ),
    pytest.param(
        bad_option(heartbeat_timeout=-1.0),
        ValueError,
        r"heartbeat_timeout.*-1\.0",
        id="option-heartbeat_timeout-negative",
    ),
    pytest.param(
        bad_option(heartbeat_timeout=math.nan),
        ValueError,
        r"heartbeat_timeout.*nan",
        id="option-heartbeat_timeout-nan",
    ),
    pytest.param(
        bad_option(heartbeat_timeout=math.inf),
        ValueError,
        r"heartbeat_timeout.*inf",
        id="option-heartbeat_timeout-inf",
    ),
    pytest.param(
        bad_option(heartbeat_timeout="1"),
        TypeError,
        r"heartbeat_timeout.*'1'",
        id="option-heartbeat_timeout-str",
    ),
    pytest.param(
        bad_option(heartbeat_timeout=True),
        TypeError,
        r"heartbeat_timeout.*True",
        id="option-heartbeat_timeout-bool",
    ),
    pytest.param(
        bad_supervisor(systemd_notify="no"),
        TypeError,
        r"systemd_notify.*'no'",
        id="supervisor-systemd_notify-str",
    ),
]
# <<< End of the entries for BAD_CALLS.


@pytest.mark.parametrize(("call", "error", "message"), HEARTBEAT_BAD_CALLS)
def test_heartbeat_entries_for_the_bad_input_table(
    call: Callable[[Supervisor], object], error: type[Exception], message: str
) -> None:
    bad_input_check(call, error, message)

