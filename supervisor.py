# supervisor.py - an in-process supervisor for long-running work on threads.
#
# Copyright (c) 2026 the supervisor.py authors
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.
"""Restart, retry and gracefully stop long-running functions running on threads.

A Python port of a Go supervisor package, with its bugs fixed. Each registered
process runs on its own daemon thread; the supervisor retries it when it returns an
exception, recovers it when it raises, and stops every process gracefully on SIGINT,
SIGTERM, a call to :meth:`Supervisor.shutdown` or the end of a fatal process.

The process-function contract (:data:`ProcessFunc`)::

    def worker(finish_signal: threading.Event, process_name: str,
               terminate_channel: TerminateChannel) -> Exception | None:
        while not finish_signal.wait(1.0):   # watch the finish signal
            ...                              # do a unit of work
        return None                          # None: ended (gracefully)

- return ``None``: the process has ended for good (during shutdown: gracefully);
- return an exception: it failed; it is retried (``retry_count``);
- raise: it crashed; it is recovered (``recover_count``).

Example (runs as it is; press Ctrl-C to stop it)::

    import logging, threading
    from supervisor import ProcessOption, Supervisor

    def tick(finish_signal: threading.Event, name: str, channel: object) -> None:
        while not finish_signal.wait(1.0):
            logging.info("tick from %s", name)

    logging.basicConfig(level=logging.INFO)
    sup = Supervisor(shutdown_timeout=5.0)
    sup.register("ticker", tick, ProcessOption(retry_interval=0.5))
    report = sup.run()   # start(), then wait until Ctrl-C or SIGTERM and stop gracefully
    raise SystemExit(report.exit_code)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import inspect
import logging
import math
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal, Protocol, TypeAlias, get_args

__all__ = [
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT",
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_UNFINISHED",
    "LOG_NS_SUPERVISOR",
    "PROCESS_RECOVER_COUNT",
    "PROCESS_RECOVER_INTERVAL",
    "PROCESS_RETRY_COUNT",
    "PROCESS_RETRY_INTERVAL",
    "DoNotRestart",
    "ExitCode",
    "GroupRestart",
    "ProcessFailed",
    "ProcessFunc",
    "ProcessGaveUp",
    "ProcessLifecycle",
    "ProcessOption",
    "ProcessStalled",
    "ProcessStarted",
    "ProcessStatus",
    "ProcessStopped",
    "ProcessWaiting",
    "RestartStrategy",
    "ShutdownCause",
    "ShutdownFinished",
    "ShutdownOrder",
    "ShutdownReport",
    "ShutdownStarted",
    "Supervisor",
    "SupervisorEvent",
    "SupervisorFailed",
    "TerminateChannel",
    "TerminateSupervisor",
    "UnknownProcessError",
    "heartbeat",
]

__version__ = "2.1.0"

# ---------------------------------------------------------------------------
# Constants (the Go package's, durations in float seconds)

PROCESS_RETRY_COUNT: Final = 3
PROCESS_RETRY_INTERVAL: Final = 3.0
PROCESS_RECOVER_COUNT: Final = 10
PROCESS_RECOVER_INTERVAL: Final = 2.0
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Final = 5.0
LOG_NS_SUPERVISOR: Final = "supervisor"

_SHUTDOWN_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
# Put on a nested supervisor's wake-up queue by its parent, which stops it.
_STOP_REQUESTED: Final = -1
# No wait can be longer than this.
_MAX_WAIT: Final = threading.TIMEOUT_MAX

# ---------------------------------------------------------------------------
# Exceptions and enums


class ExitCode(enum.IntEnum):
    """The exit code a program should end with: :attr:`ShutdownReport.exit_code`."""

    OK = 0
    """A signal or a request stopped the supervisor and every process finished."""
    FATAL = 1
    """A fatal process ended, a process asked to terminate, or restarts hit their limit."""
    UNFINISHED = 2
    """A signal or a request stopped the supervisor, but a process did not finish."""

    # Print "0", as Python 3.11+ prints an IntEnum ("ExitCode.OK" on 3.10).
    __str__ = int.__repr__


# Module-level names for the exit codes (Go's constants), not members of ExitCode.
EXIT_OK: Final = ExitCode.OK
EXIT_FATAL: Final = ExitCode.FATAL
EXIT_UNFINISHED: Final = ExitCode.UNFINISHED


class DoNotRestart(Exception):
    """Raise or return this from a process to end it for good.

    The process is not retried or recovered, and its end never shuts the supervisor
    down, whatever ``is_fatal`` says.
    """


class TerminateSupervisor(Exception):
    """Raise or return this from a process to shut the whole supervisor down.

    It works whatever the process's options say; the report's ``cause`` is
    :attr:`ShutdownCause.TERMINATE_REQUESTED` and its ``exit_code`` is ``ExitCode.FATAL``.
    """


class SupervisorFailed(Exception):
    """Returned by :meth:`Supervisor.as_process` when the child supervisor shut itself down.

    ``report`` is the child's :class:`ShutdownReport`.
    """

    def __init__(self, report: ShutdownReport) -> None:
        super().__init__(f"child supervisor shut down: {report.reason}")
        self.report = report


class UnknownProcessError(KeyError, ValueError):
    """No process of that name is registered (a KeyError, and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProcessLifecycle(enum.Enum):
    """Where a process is in its life; see :meth:`Supervisor.status`."""

    REGISTERED = "registered"
    """Registered, not started yet."""
    RUNNING = "running"
    """Its function is running."""
    WAITING_TO_RETRY = "waiting to retry"
    """It returned an error and waits ``retry_interval`` (with backoff) to run again."""
    WAITING_TO_RECOVER = "waiting to recover"
    """It raised and waits ``recover_interval`` (with backoff) to run again."""
    RESTARTING = "restarting"
    """Another process failed and this one is stopped to restart with it (a strategy)."""
    STALLED = "stalled"
    """Its function runs, but sent no :func:`heartbeat` for ``heartbeat_timeout``."""
    FINISHED = "finished"
    """It returned for good: None, DoNotRestart, TerminateSupervisor, or when told to stop."""
    FAILED = "failed"
    """It gave up: its retries or recoveries ran out, or it raised with ``recover=False``."""
    REMOVED = "removed"
    """:meth:`Supervisor.remove` took it out; its name may be registered again."""


class ShutdownCause(enum.Enum):
    """What started a shutdown; see :attr:`ShutdownReport.cause`."""

    SIGNAL = "signal"
    REQUEST = "request"
    FATAL_PROCESS = "fatal process"
    TERMINATE_REQUESTED = "terminate requested"
    RESTART_LIMIT = "restart limit"


ShutdownOrder: TypeAlias = Literal["parallel", "reverse"]
"""``"parallel"``: every process is told to finish at once. ``"reverse"``: in reverse
registration order, each after every later process has returned (or the shutdown
timeout has run out), on a helper thread. Either way no run starts once the shutdown
has begun."""

RestartStrategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""Which processes restart when one fails and will run again (Erlang/OTP's names):
``"one_for_one"`` only that one; ``"one_for_all"`` every process; ``"rest_for_one"``
that one and every process registered after it."""

# A process that ends in one of these states does not run again.
_FINAL: Final = frozenset(
    {ProcessLifecycle.FINISHED, ProcessLifecycle.FAILED, ProcessLifecycle.REMOVED}
)
# A group restart stops a process in one of these states.
_RESTARTABLE: Final = frozenset(
    {
        ProcessLifecycle.RUNNING,
        ProcessLifecycle.STALLED,
        ProcessLifecycle.WAITING_TO_RETRY,
        ProcessLifecycle.WAITING_TO_RECOVER,
    }
)

# ---------------------------------------------------------------------------
# Public types


class TerminateChannel(Protocol):
    """Where a process may announce its termination (Go's ``terminateChannel``).

    ``put`` never blocks. A ``queue.SimpleQueue[str]`` satisfies this protocol, so a
    process can be called with one in a unit test.
    """

    def put(self, name: str, /) -> None: ...


ProcessFunc: TypeAlias = Callable[[threading.Event, str, TerminateChannel], Exception | None]
"""A long-running process: ``(finish_signal, process_name, terminate_channel)``.

A plain function (not ``async def``: it runs on a thread). It should run until
``finish_signal`` is set and then return None promptly: a thread cannot be killed, so a
process that ignores its finish signal is left running (and named in the shutdown
report). Returning an exception asks for a retry; raising is a crash that the recover
policy handles. Returning anything else is a bug, handled as a crash (a ``TypeError``).
Attempts and recoveries count over the process's whole life unless ``reset_after`` is
set: a process that fails now and then eventually runs out of them.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessOption:
    """How one process is retried and recovered. Every default is Go's ``defaultOptions``.

    Fields not given keep their defaults. Durations are seconds (int or float, finite,
    non-negative) and are stored as floats; a bad field raises ``TypeError`` or
    ``ValueError`` naming it and the value.

    - ``recover``: run the process again after it raises.
    - ``recover_interval``: wait before a recovery.
    - ``recover_count``: how many recoveries in all (>= 0); each starts a fresh retry
      budget, so at most ``(recover_count + 1) * retry_count`` runs.
    - ``retry_count``: attempts in one retry budget (>= 1), the first included.
    - ``retry_interval``: wait between two attempts (none after the last).
    - ``is_fatal``: shut the supervisor down when this process ends for good outside a
      shutdown (returns None, or gives up). One-shot work wants ``is_fatal=False``.
    - ``backoff_factor``: each consecutive wait is this many times the previous one
      (>= 1; 1.0 keeps fixed intervals).
    - ``max_interval``: a cap on every wait (None: no cap; not below either interval).
    - ``jitter``: each wait is lengthened by a random fraction, up to this much (0 to 1),
      before the cap.
    - ``reset_after``: a run that lasted at least this long before it failed starts over
      with fresh retry and recover counters and a fresh backoff (None: never, so the
      counters add up over the process's whole life).
    - ``heartbeat_timeout``: a run that goes longer than this (> 0) without a
      :func:`heartbeat` is stalled (None: no watchdog). A thread cannot be killed: a
      stalled process is reported, and a fatal one shuts the supervisor down.
    """

    recover: bool = True
    recover_interval: float = PROCESS_RECOVER_INTERVAL
    recover_count: int = PROCESS_RECOVER_COUNT
    retry_count: int = PROCESS_RETRY_COUNT
    retry_interval: float = PROCESS_RETRY_INTERVAL
    is_fatal: bool = True
    backoff_factor: float = 1.0
    max_interval: float | None = None
    jitter: float = 0.0
    reset_after: float | None = None
    heartbeat_timeout: float | None = None

    def __post_init__(self) -> None:
        _check_bool("ProcessOption.recover", self.recover)
        _check_bool("ProcessOption.is_fatal", self.is_fatal)
        _check_count("ProcessOption.recover_count", self.recover_count, 0)
        _check_count("ProcessOption.retry_count", self.retry_count, 1)
        self._number("recover_interval")
        self._number("retry_interval")
        self._number("backoff_factor", low=1.0, high=math.inf)
        self._number("jitter", high=1.0)
        self._number("max_interval", optional=True)
        self._number("reset_after", optional=True)
        self._number("heartbeat_timeout", optional=True, positive=True)
        self._below_cap("retry_interval", PROCESS_RETRY_INTERVAL)
        self._below_cap("recover_interval", PROCESS_RECOVER_INTERVAL)

    def _number(
        self,
        field: str,
        low: float = 0.0,
        high: float = _MAX_WAIT,
        *,
        optional: bool = False,
        positive: bool = False,
    ) -> None:
        """Check a number field, and store it as a float."""
        value = getattr(self, field)
        if value is None and optional:
            return
        number = _check_number(f"ProcessOption.{field}", value, low, high, positive=positive)
        object.__setattr__(self, field, number)

    def _below_cap(self, field: str, default: float) -> None:
        interval = getattr(self, field)
        cap = self.max_interval
        if cap is None or cap >= interval:
            return
        given = f"{interval!r}, the default" if interval == default else repr(interval)
        raise ValueError(
            f"ProcessOption.max_interval ({cap!r}) is below {field} ({given}):"
            f" give {field} at most {cap!r}, or a larger max_interval"
        )


# ---------------------------------------------------------------------------
# Events: each is handed to ``Supervisor(on_event=...)`` outside the lock.


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStarted:
    """A run of the process began; ``attempt`` counts from 1 in each retry budget."""

    process_name: str
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessFailed:
    """A run returned an exception (``panic`` False) or raised one (``panic`` True)."""

    process_name: str
    attempt: int
    error: BaseException
    panic: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessWaiting:
    """The process waits ``delay`` seconds before it is retried or recovered."""

    process_name: str
    delay: float
    kind: Literal["retry", "recover"]


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessGaveUp:
    """The process's retries or recoveries ran out; ``fatal`` says a shutdown follows."""

    process_name: str
    error: BaseException
    fatal: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStopped:
    """The process returned for good without giving up (``error`` is DoNotRestart,
    TerminateSupervisor, an error returned or raised when told to stop, or None)."""

    process_name: str
    state: ProcessLifecycle
    error: BaseException | None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupRestart:
    """``process_name`` failed, and the processes in ``restarting`` (in registration
    order) are stopped to run again with it, as the restart strategy says."""

    process_name: str
    restarting: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStalled:
    """The process sent no heartbeat for ``silent_for`` seconds; ``stack`` is where it is."""

    process_name: str
    silent_for: float
    stack: str


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownStarted:
    """A shutdown began; ``reason`` is the report's. It comes before any process is told."""

    reason: str
    cause: ShutdownCause


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownFinished:
    """A shutdown ended with this report."""

    report: ShutdownReport


SupervisorEvent: TypeAlias = (
    ProcessStarted
    | ProcessFailed
    | ProcessWaiting
    | ProcessGaveUp
    | ProcessStopped
    | GroupRestart
    | ProcessStalled
    | ShutdownStarted
    | ShutdownFinished
)


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStatus:
    """A snapshot of one process (Go's ``ProcessState``, with more in it).

    ``since`` is the ``time.monotonic()`` at which the process entered ``state``;
    ``last_error`` is the repr of the last exception it returned or raised, cut to
    10,000 characters; ``thread_name`` is its thread's name.
    """

    name: str
    state: ProcessLifecycle
    attempt: int
    recovered_num: int
    restarts: int
    last_error: str | None
    since: float
    thread_name: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What a shutdown did, returned by :meth:`Supervisor.wait_on_shutdown_signal`.

    - ``reason``: a sentence naming the signal, the fatal process or the request.
    - ``cause``: the same as a :class:`ShutdownCause`; ``process_name``, ``signal_number``
      and ``error`` give its details where they apply.
    - ``finished``: every process whose function has returned for good (or never ran),
      in registration order, including those that ended before the shutdown.
    - ``failed``: those of ``finished`` that gave up (their retries or recoveries ran
      out, they raised with ``recover=False``, or they hit the restart limit).
    - ``unfinished``: every process whose function was still running when the wait
      ended; ``stacks`` maps each to the stack of its function.
    - ``cut_short``: a second signal ended the wait before ``shutdown_timeout`` had
      passed (``unfinished`` names those whose function had not returned).
    - ``duration``: seconds from the start of the shutdown to this report.
    - ``exit_code``: ``ExitCode.FATAL`` (1) if a fatal process, TerminateSupervisor or
      the restart limit caused the shutdown, else ``ExitCode.UNFINISHED`` (2) if a
      process did not finish, else ``ExitCode.OK`` (0).
    """

    reason: str
    cause: ShutdownCause
    finished: tuple[str, ...]
    unfinished: tuple[str, ...]
    duration: float
    exit_code: ExitCode
    process_name: str | None = None
    signal_number: int | None = None
    error: BaseException | None = None
    stacks: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    failed: tuple[str, ...] = ()
    cut_short: bool = False


def heartbeat() -> None:
    """Tell the supervisor that the process running on this thread is alive.

    Call it from a process with a ``heartbeat_timeout``, anywhere below its function,
    more often than that timeout. On a thread that no supervisor runs it does nothing,
    so process code runs in unit tests without one. It takes no lock, unless the
    process was stalled.
    """
    running = _current.running
    if running is None:
        return
    supervisor, proc = running
    last = proc.beat
    proc.beat = time.monotonic()
    if proc.state is ProcessLifecycle.STALLED:
        supervisor._resumed(proc, proc.beat - last)


# ---------------------------------------------------------------------------
# The per-process record, the supervisor's phase and the restart policy


class _Phase(enum.Enum):
    """Where the supervisor is in its life."""

    NOT_STARTED = "not started"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting down"
    STOPPED = "stopped"


class _End(enum.Enum):
    """How a process ended for good; :meth:`Supervisor._end` makes the rest of it."""

    # By a shutdown, a removal, its own finish signal, or a group restart it is not
    # run again after.
    STOPPED = "stopped"
    # None, DoNotRestart or TerminateSupervisor.
    RETURNED = "returned"
    GAVE_UP = "gave up"
    RESTART_LIMIT = "restart limit"
    # The OS refused its thread: start() raises, and no shutdown begins.
    REFUSED = "refused"


class _FinishSignal(threading.Event):
    """A process's finish signal; ``on_set`` lets a nested supervisor follow it."""

    on_set: Callable[[], None] | None = None

    def set(self) -> None:
        super().set()
        # Read once: it may be unset meanwhile.
        callback = self.on_set
        if callback is not None:
            callback()


class _Process:
    """One registered process. ``name``, ``function`` and ``options`` never change; the
    other fields are guarded by the supervisor's lock, except ``beat``, which
    :func:`heartbeat` writes without it, and the events, which are set outside it."""

    __slots__ = (
        "attempt",
        "beat",
        "ended",
        "finish_signal",
        "function",
        "group",
        "last_error",
        "name",
        "options",
        "recovered_num",
        "removing",
        "restarts",
        "resume",
        "runs",
        "since",
        "state",
        "thread",
    )

    def __init__(
        self, name: str, function: ProcessFunc, options: ProcessOption, now: float
    ) -> None:
        self.name = name
        self.function = function
        self.options = options
        # What status() shows.
        self.state = ProcessLifecycle.REGISTERED
        self.since = now
        self.attempt = 0
        self.recovered_num = 0
        self.restarts = 0
        self.runs = 0
        self.last_error: BaseException | None = None
        self.thread: threading.Thread | None = None
        # Set to ask it to finish; a fresh one for each run after a group restart.
        self.finish_signal = _FinishSignal()
        # Set once it has ended for good.
        self.ended = threading.Event()
        # remove() was called.
        self.removing = False
        # The last heartbeat, or the start of the run (time.monotonic(), as heartbeat()).
        self.beat = time.monotonic()
        # The group restart it is stopped for, and the event that lets it run again.
        self.group: _Group | None = None
        self.resume = threading.Event()

    def enter(self, state: ProcessLifecycle, now: float) -> None:
        self.state = state
        self.since = now

    def begin_run(self, attempt: int, now: float) -> int:
        """A run begins, as the next attempt after ``attempt``; returns that attempt.
        Every run but the first is a restart."""
        self.restarts = self.runs
        self.runs += 1
        self.attempt = attempt + 1
        self.state = ProcessLifecycle.RUNNING
        self.since = now
        self.beat = time.monotonic()
        return self.attempt

    def tell(self) -> None:
        """Ask it to finish: its finish signal, and the end of a group restart's wait."""
        self.finish_signal.set()
        self.resume.set()


class _Group:
    """A group restart: the processes stopped for it, and those not returned yet."""

    def __init__(self, members: list[_Process]) -> None:
        self.members = members
        self.pending = set(members)
        self.returned = threading.Event()

    def leave(self, proc: _Process) -> None:
        """Under the lock: ``proc`` has returned (or is removed): it holds the restart up
        no longer."""
        self.pending.discard(proc)
        if not self.pending:
            self.returned.set()


@dataclasses.dataclass(slots=True)
class _Shutdown:
    """A shutdown under way: what began it, and when the wait for the processes ends."""

    cause: ShutdownCause
    reason: str
    started_at: float
    process_name: str | None
    signal_number: int | None
    error: BaseException | None
    # Held while the shutdown is announced and the processes are told.
    telling: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    # Every process has been told to finish, by then.
    told: bool = False
    deadline: float = math.inf
    # The thread that tells the processes in reverse order, once started.
    teller: threading.Thread | None = None
    report: ShutdownReport | None = None


def _restart_policy(  # noqa: PLR0917 (the history is positional)
    options: ProcessOption,
    attempt: int,
    recovered: int,
    waits: int,
    ran_for: float,
    raised: bool,
    draw: float,
) -> tuple[ProcessLifecycle, float, int, int, int]:
    """What follows a failed run: ``(state, delay, attempt, recovered, waits)``.

    The history: the run's ``attempt`` in its retry budget (from 1), the ``recovered``
    recoveries so far, the consecutive ``waits`` so far (for the backoff), how long the
    run lasted (``ran_for``) and whether it ``raised``; ``draw`` is a random number in
    [0, 1) for the jitter. The state is ``WAITING_TO_RETRY`` or ``WAITING_TO_RECOVER``
    (run again after ``delay`` seconds) or ``FAILED`` (give up); the counters are the
    history for the next run. A pure function: no lock, clock, randomness or logging.
    """
    if options.reset_after is not None and ran_for >= options.reset_after:
        # A stable run starts afresh.
        attempt = 1
        recovered = 0
        waits = 0
    if raised and options.recover and recovered < options.recover_count:
        state = ProcessLifecycle.WAITING_TO_RECOVER
        interval = options.recover_interval
        # A recovery starts a fresh retry budget.
        attempt = 0
        recovered += 1
    elif not raised and attempt < options.retry_count:
        state = ProcessLifecycle.WAITING_TO_RETRY
        interval = options.retry_interval
    else:
        return ProcessLifecycle.FAILED, 0.0, attempt, recovered, waits
    try:
        delay = interval * options.backoff_factor**waits
    except OverflowError:
        delay = math.inf if interval else 0.0
    delay *= 1.0 + options.jitter * draw
    cap = _MAX_WAIT if options.max_interval is None else options.max_interval
    return state, min(delay, cap), attempt, recovered, waits + 1


def _never_restarted(options: ProcessOption) -> bool:
    """No failure would run it again (Erlang/OTP's temporary child)."""
    recovers = options.recover and options.recover_count > 0
    return options.retry_count == 1 and not recovers


def _shutdown_cause(proc: _Process, how: _End, error: BaseException | None) -> ShutdownCause | None:
    """The shutdown that a process's end begins, if any."""
    if how is _End.RESTART_LIMIT:
        return ShutdownCause.RESTART_LIMIT
    if how in (_End.STOPPED, _End.REFUSED) or isinstance(error, DoNotRestart):
        return None
    if isinstance(error, TerminateSupervisor):
        return ShutdownCause.TERMINATE_REQUESTED
    if proc.options.is_fatal:
        return ShutdownCause.FATAL_PROCESS
    return None


class _Current(threading.local):
    """The supervisor and the process whose function runs on this thread, if any."""

    running: tuple[Supervisor, _Process] | None = None


_current = _Current()


# ---------------------------------------------------------------------------
# The supervisor


class Supervisor:
    """Runs registered processes on threads, restarts them, and stops them gracefully.

    ``shutdown_timeout`` (seconds; 0 means the default, as in Go) bounds the graceful
    shutdown. ``logger`` gets a child named ``"supervisor"``; by default the logger is
    ``logging.getLogger("supervisor")``. ``on_event`` receives every
    :data:`SupervisorEvent`; it is called outside the lock, on the thread where the
    event happened, and an exception in it is logged and ignored. ``shutdown_order`` is
    ``"parallel"`` or ``"reverse"`` (:data:`ShutdownOrder`).

    ``strategy`` says which processes restart with a failed one (:data:`RestartStrategy`).
    ``max_restarts`` (None: no limit) and ``max_seconds`` (> 0) are the restart
    intensity, as in Erlang/OTP: a restart that would make more than ``max_restarts``
    restarts within ``max_seconds`` (a restart exactly ``max_seconds`` old still counts)
    shuts the supervisor down instead (``ShutdownCause.RESTART_LIMIT``). Only restarts
    count: a process that gives up is not restarted, so with ``max_restarts=0`` the
    first restart, not the first failure, shuts down.

    Under systemd (``NOTIFY_SOCKET`` set), a supervisor that handles signals (``run()``,
    or ``wait_on_shutdown_signal()``) sends ``READY=1`` once its processes run,
    ``STOPPING=1`` when the shutdown begins, and, with ``WATCHDOG_USEC``, ``WATCHDOG=1``
    every half of it while no process is stalled; ``systemd_notify=False`` turns it off.

    All methods are thread-safe. :meth:`wait_on_shutdown_signal` is meant for the main
    thread, which owns signal handling. Tests may replace ``_clock`` (which times runs
    and the restart window) and ``_random`` (which draws the jitter).
    """

    def __init__(
        self,
        shutdown_timeout: float = DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        logger: logging.Logger | None = None,
        *,
        on_event: Callable[[SupervisorEvent], object] | None = None,
        shutdown_order: ShutdownOrder = "parallel",
        strategy: RestartStrategy = "one_for_one",
        max_restarts: int | None = None,
        max_seconds: float = 5.0,
        systemd_notify: bool = True,
    ) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"Supervisor.logger must be a logging.Logger or None, got {logger!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"Supervisor.on_event must be callable or None, got {on_event!r}")
        _check_choice("Supervisor.shutdown_order", shutdown_order, get_args(ShutdownOrder))
        _check_choice("Supervisor.strategy", strategy, get_args(RestartStrategy))
        if max_restarts is not None:
            _check_count("Supervisor.max_restarts", max_restarts, 0)
        _check_bool("Supervisor.systemd_notify", systemd_notify)
        # The configuration, which never changes.
        # 0 means the default, as in Go.
        timeout = _check_number("Supervisor.shutdown_timeout", shutdown_timeout)
        self._shutdown_timeout = timeout or DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
        self._logger = (logger or logging.getLogger()).getChild(LOG_NS_SUPERVISOR)
        self._on_event = on_event
        self._shutdown_order = shutdown_order
        self._strategy = strategy
        self._max_restarts = max_restarts
        self._max_seconds = _check_number("Supervisor.max_seconds", max_seconds, positive=True)
        self._systemd_notify = systemd_notify
        # Seams for tests: the clock of runs and of the restart window, and the jitter.
        self._clock = time.monotonic
        self._random = random.Random().random
        self._channel = types.SimpleNamespace(put=self._terminate_channel_put)
        # Held by the thread inside wait_on_shutdown_signal().
        self._waiter = threading.Lock()
        # Wakes the watchdog thread to look again.
        self._watchdog_wakeup = threading.Event()
        # _lock guards the fields below, those that _start_afresh() sets (but the systemd
        # ones, written by the waiting thread alone), and each _Process's mutable fields.
        # It is reentrant because a signal handler may call shutdown() on a thread that
        # holds it.
        self._lock = threading.RLock()
        # In registration order.
        self._processes: dict[str, _Process] = {}
        # The watchdog thread, while it runs its loop.
        self._watchdog: threading.Thread | None = None
        # Ended processes still saying their end (see _end): the report waits for them.
        # Not set afresh for a rerun: an end of the last run may still be said.
        self._ending = 0
        self._start_afresh()

    def _start_afresh(self) -> None:
        """The state of a supervisor that has not started (run again: as_process())."""
        self._phase = _Phase.NOT_STARTED
        # Processes whose loop has not ended.
        self._running = 0
        # The times of the restarts within the last max_seconds.
        self._restart_times: collections.deque[float] = collections.deque()
        # The systemd address once known, and seconds between watchdog pings (0: none).
        self._notify_to = ""
        self._ping_every = 0.0
        # Not guarded by the lock: the shutdown, once begun, under the key "shutdown"
        # (dict.setdefault claims it in one step that a signal handler running on the same
        # thread cannot split), and the queue that wakes the waiting thread (a signal
        # number, _STOP_REQUESTED, or None to look again).
        self._shutdown_claim: dict[str, _Shutdown] = {}
        self._wakeups: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"<Supervisor {self._phase.value}, {_plural(len(self._processes), 'process')}>"

    # -- registration and start ---------------------------------------------

    def register(
        self, name: str, process: ProcessFunc, options: ProcessOption | None = None
    ) -> None:
        """Add a process; once :meth:`start` has run, it starts at once.

        Raises ``TypeError`` or ``ValueError`` for a name that is not a non-empty str,
        a name already registered (a removed process's name may be reused once it has
        returned), a process that cannot be called as ``process(finish_signal,
        process_name, terminate_channel)`` or that is an ``async def`` function, or
        options that are not a :class:`ProcessOption`; ``RuntimeError`` once the
        shutdown has begun. If the OS refuses the process's thread (after :meth:`start`),
        the process fails without running and the error is raised.
        """
        _check_name(name)
        _check_process(name, process)
        if options is None:
            options = ProcessOption()
        if not isinstance(options, ProcessOption):
            raise TypeError(f"options for {name!r} must be a ProcessOption, got {options!r}")
        with self._lock:
            if self._shutdown() is not None:
                raise RuntimeError(f"{self!r}: the shutdown has begun; cannot register {name!r}")
            if name in self._processes:
                raise ValueError(f"process name {name!r} is already registered")
            proc = _Process(name, process, options, self._clock())
            self._processes[name] = proc
            started = self._phase is _Phase.RUNNING
            if started:
                self._launch(proc)
        if started:
            self._start_threads([proc])

    def start(self) -> None:
        """Start a thread for each registered process.

        Raises ``RuntimeError`` if the supervisor is running already. After a shutdown
        has begun it starts nothing (a warning is logged), so a ``start()`` racing
        ``shutdown()`` is safe. If the OS refuses a thread (a process's, or the
        watchdog's), that process and those after it fail without running, and the
        error is raised.
        """
        with self._lock:
            if self._phase is _Phase.RUNNING:
                raise RuntimeError(f"{self!r} was already started")
            starting = self._shutdown() is None and self._phase is _Phase.NOT_STARTED
            procs = list(self._processes.values())
            if starting:
                self._phase = _Phase.RUNNING
                for proc in procs:
                    self._launch(proc)
        if not starting:
            self._log(logging.WARNING, "start() after the shutdown began: no process started")
            return
        self._start_threads(procs)

    def _launch(self, proc: _Process) -> None:
        """Under the lock: a thread for the process, counted as running until it ends."""
        proc.thread = threading.Thread(
            target=self._supervise, args=(proc,), name=proc.name, daemon=True
        )
        self._running += 1

    def _start_threads(self, procs: list[_Process]) -> None:
        """Start the launched threads (and the watchdog, for the first process that needs
        it) outside the lock, which each new thread takes at once. If the OS refuses a
        thread, that process and those after it give up without running."""
        for index, proc in enumerate(procs):
            try:
                if proc.options.heartbeat_timeout is not None:
                    self._start_watchdog()
                assert proc.thread is not None
                proc.thread.start()
            except BaseException as exc:
                for refused in procs[index:]:
                    self._end(refused, _End.REFUSED, exc)
                raise

    def _supervise(self, proc: _Process) -> None:
        _current.running = (self, proc)
        try:
            self._loop(proc)
        except BaseException as exc:
            # A failure of supervision itself: never a silent end.
            self._log(
                logging.CRITICAL,
                f"supervision of process {proc.name!r} failed",
                exc_info=exc,
                process_name=proc.name,
            )
            self._end(proc, _End.GAVE_UP, exc)

    # -- the supervision loop and its one way out ----------------------------

    def _loop(self, proc: _Process) -> None:
        """Run the process again and again, as its options say, until it ends for good."""
        # The history that the restart policy reads.
        attempt = 0
        recovered = 0
        waits = 0
        while True:
            # 1. Start, unless stopping; after a group restart, once the group may run again.
            run = self._start(proc, attempt)
            if run is None:
                self._end(proc, _End.STOPPED, None)
                return
            attempt, began, finish_signal = run
            # 2. Run.
            error, raised = self._run(proc, finish_signal)
            # 3. Sort the outcome and ask the policy, in one locked step with the state.
            with self._lock:
                if proc.group is not None:
                    # Stopped for a group restart: neither an end nor a failed attempt.
                    attempt -= 1
                    continue
                if error is not None:
                    proc.last_error = error
                now = self._clock()
                if error is None or isinstance(error, (DoNotRestart, TerminateSupervisor)):
                    end: _End | None = _End.RETURNED
                elif self._stopping(proc):
                    end = _End.STOPPED
                else:
                    draw = self._random() if proc.options.jitter else 0.0
                    state, delay, next_attempt, recovered, waits = _restart_policy(
                        proc.options, attempt, recovered, waits, now - began, raised, draw
                    )
                    end = self._decide(proc, state, recovered, now)
                group = self._plan_group_restart(proc, now) if end is None else None
            # 4. Say why it failed; then end, or wait to run again.
            if end is not _End.RETURNED and error is not None:
                self._failed(proc, attempt, error, raised, None if end is not None else delay)
            if end is not None:
                self._end(proc, end, error, raised)
                return
            attempt = next_attempt
            if group is not None:
                self._restart_group(proc, group, delay)
            elif delay > 0:
                finish_signal.wait(delay)

    def _start(self, proc: _Process, attempt: int) -> tuple[int, float, threading.Event] | None:
        """A run begins, unless the process must stop (then None); after a group restart,
        once its group may run again. Returns the run's attempt, start and finish signal."""
        while True:
            with self._lock:
                # Read with the stop check: a group restart also sets the finish signal.
                group = proc.group
                if group is None:
                    # (Ended already: a KeyboardInterrupt in start() had it taken as refused.)
                    if self._stopping(proc) or proc.state in _FINAL:
                        return None
                    attempt = proc.begin_run(attempt, self._clock())
                    began = proc.since
                    finish_signal = proc.finish_signal
                    break
            if not self._rejoin(proc, group):
                return None
        if proc.options.heartbeat_timeout is not None:
            # The run has a deadline.
            self._watchdog_wakeup.set()
        if self._logger.isEnabledFor(logging.INFO):
            self._log(
                logging.INFO,
                f"process {proc.name!r} started (attempt {attempt} of {proc.options.retry_count})",
                process_name=proc.name,
                attempt=attempt,
            )
        if self._on_event is not None:
            self._emit(ProcessStarted(proc.name, attempt))
        return attempt, began, finish_signal

    def _run(
        self, proc: _Process, finish_signal: threading.Event
    ) -> tuple[BaseException | None, bool]:
        """One run of the function: what it returned or raised, and whether it raised.
        A result that is neither None nor an exception is a bug, handled as a crash."""
        try:
            result = proc.function(finish_signal, proc.name, self._channel)
        except BaseException as exc:
            # A crash, whatever it is: never a silent end.
            return exc, True
        if result is None or isinstance(result, Exception):
            return result, False
        return _returned_a_bug(proc.name, result), True

    def _stopping(self, proc: _Process) -> bool:
        """Under the lock: whether the process must stop instead of running again (no run
        starts once the shutdown has begun)."""
        return bool(self._shutdown_claim) or proc.removing or proc.finish_signal.is_set()

    def _decide(
        self, proc: _Process, state: ProcessLifecycle, recovered: int, now: float
    ) -> _End | None:
        """Under the lock: how a failed process ends, or None if it runs again (its state
        is then set, and the restart counted against the restart intensity)."""
        proc.recovered_num = recovered
        if state is ProcessLifecycle.FAILED:
            return _End.GAVE_UP
        if self._max_restarts is not None:
            window = self._restart_times
            while window and window[0] < now - self._max_seconds:
                window.popleft()
            if len(window) >= self._max_restarts:
                return _End.RESTART_LIMIT
            window.append(now)
        proc.state = state
        proc.since = now
        return None

    def _failed(
        self, proc: _Process, attempt: int, error: BaseException, raised: bool, delay: float | None
    ) -> None:
        """A run failed: its event, and, if it runs again after ``delay``, the log line
        and the wait's event (else its end says the rest)."""
        name = proc.name
        if self._on_event is not None:
            self._emit(ProcessFailed(name, attempt, error, raised))
        if delay is None:
            return
        if self._logger.isEnabledFor(logging.ERROR):
            text = _describe(error)
            if raised:
                count = f"recovery {proc.recovered_num} of {proc.options.recover_count}"
                message = f"process {name!r} crashed ({count}): {text}; restarting in "
            else:
                count = f"attempt {attempt} of {proc.options.retry_count}"
                message = f"process {name!r} failed ({count}): {text}; retrying in "
            self._log(
                logging.ERROR,
                message + _seconds(delay),
                exc_info=error if raised else None,
                process_name=name,
                attempt=attempt,
                error=error,
                interval=delay,
            )
        if self._on_event is not None:
            self._emit(ProcessWaiting(name, delay, "recover" if raised else "retry"))

    def _end(
        self, proc: _Process, how: _End, error: BaseException | None, raised: bool = False
    ) -> None:
        """The one way out: ``proc`` ends for good. Its final state is set in the same
        locked step that counts it out; then it is said (see _say_end); the report waits
        until that is done."""
        with self._lock:
            if proc.state in _FINAL:
                return
            if self._stopping(proc):
                # An end during a shutdown or removal is graceful.
                how = _End.STOPPED
            if error is not None:
                proc.last_error = error
            if how in (_End.STOPPED, _End.RETURNED):
                state = ProcessLifecycle.FINISHED
            else:
                state = ProcessLifecycle.FAILED
            proc.enter(state, self._clock())
            self._running -= 1
            self._ending += 1
            if proc.removing:
                self._forget(proc)
        proc.ended.set()
        try:
            self._say_end(proc, how, error, raised)
        finally:
            # Even if supervision itself failed here: the report must not wait for it.
            with self._lock:
                self._ending -= 1
                last = self._running == 0 and self._ending == 0
                if last and self._shutdown() is not None:
                    # The waiting thread reports.
                    self._wakeups.put(None)

    def _say_end(
        self,
        proc: _Process,
        how: _End,
        error: BaseException | None,
        raised: bool,
    ) -> None:
        """After a process ended (its state is final): the shutdown its end calls for
        begins; then its log line and its event, which may run slow user code. A stop
        is said once the shutdown that stopped it has been announced."""
        shutdown = self._shutdown()
        if how is _End.STOPPED and shutdown is not None:
            with shutdown.telling:
                pass
        cause = _shutdown_cause(proc, how, error)
        if cause is not None:
            reason = self._end_reason(proc, how, error, raised)
            self._begin_shutdown(cause, reason, process_name=proc.name, error=error)
        level, message = self._end_words(proc, how, error, raised, cause is not None)
        self._log(
            level,
            message,
            exc_info=error if raised else None,
            process_name=proc.name,
            attempt=proc.attempt,
            error=error,
        )
        if proc.state is ProcessLifecycle.FAILED and error is not None:
            self._emit(ProcessGaveUp(proc.name, error, cause is not None))
        else:
            self._emit(ProcessStopped(proc.name, proc.state, error))

    def _end_reason(
        self, proc: _Process, how: _End, error: BaseException | None, raised: bool
    ) -> str:
        """Why a process ended, as the reason of the shutdown that its end begins. It runs
        no user code (no repr() of the error), so that nothing can hold the shutdown up."""
        name = proc.name
        if how is _End.RESTART_LIMIT:
            limit = f"more than {self._max_restarts} restarts within {_seconds(self._max_seconds)}"
            return f"{limit} (the last: process {name!r} failed)"
        if isinstance(error, TerminateSupervisor):
            return f"process {name!r} asked to terminate the supervisor"
        if how is _End.RETURNED:
            return (
                f"fatal process {name!r} returned None; one-shot work should be registered"
                " with ProcessOption(is_fatal=False) or return DoNotRestart"
            )
        if raised and not proc.options.recover:
            ran_out = "a crash (recover=False)"
        elif raised:
            ran_out = _plural(proc.recovered_num, "recovery")
        else:
            ran_out = _plural(proc.attempt, "attempt")
        fatal = "fatal " if proc.options.is_fatal else ""
        return f"{fatal}process {name!r} gave up after {ran_out}"

    def _end_words(
        self, proc: _Process, how: _End, error: BaseException | None, raised: bool, shuts_down: bool
    ) -> tuple[int, str]:
        """The log level and line of a process's end."""
        name = proc.name
        if how is _End.STOPPED and not raised:
            return logging.INFO, f"process {name!r} stopped"
        text = _describe(error)
        if how is _End.STOPPED:
            return logging.ERROR, f"process {name!r} crashed as it stopped: {text}"
        if how is _End.REFUSED:
            return logging.ERROR, f"process {name!r} could not start: {text}"
        if isinstance(error, DoNotRestart):
            return logging.INFO, f"process {name!r} asked not to be restarted: {text}"
        if how is _End.RETURNED and not shuts_down:
            return logging.INFO, f"process {name!r} finished"
        message = self._end_reason(proc, how, error, raised)
        if error is not None:
            message += f": {text}"
        if shuts_down:
            message += "; shutting down"
        if isinstance(error, TerminateSupervisor):
            return logging.WARNING, message
        return logging.ERROR, message

    def _forget(self, proc: _Process) -> None:
        """Under the lock: a removed process that has returned is forgotten (its name may be
        registered again), so that register and remove cycles hold no memory."""
        proc.enter(ProcessLifecycle.REMOVED, self._clock())
        del self._processes[proc.name]
        proc.ended.set()

    # -- the shutdown and the report -----------------------------------------

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as a signal does; it does not wait for the processes.

        Safe from any thread, a process included, and idempotent: only the first call
        (or signal, or fatal process) counts. The shutdown is logged and its
        :class:`ShutdownStarted` event emitted first, on the calling thread, then every
        process is told (see :data:`ShutdownOrder`); :meth:`wait_on_shutdown_signal`
        waits for them and returns the report. From a signal handler of your own, the
        log line and the hook run inside the handler, whatever the main thread was
        doing: a logging handler or hook that takes a lock may deadlock there. Let the
        supervisor handle SIGINT and SIGTERM (:meth:`run` does) rather than call this
        from a handler.
        """
        self._begin_shutdown(ShutdownCause.REQUEST, "shutdown() was called")

    def wait_on_shutdown_signal(self, *, handle_signals: bool = True) -> ShutdownReport:
        """Block until a shutdown, carry it out gracefully, and return its report.

        A shutdown begins with SIGINT or SIGTERM (while this method runs, its handlers
        replace the previous ones, which are restored when it returns), with
        :meth:`shutdown`, or with the end of a fatal process. Every process is then told
        to finish (see :data:`ShutdownOrder`), and this method returns as soon as every process has
        returned, or after ``shutdown_timeout`` at the latest; a second signal during
        the shutdown cuts the wait short at once (``ShutdownReport.cut_short``). Signals
        that arrive after that, until the handlers are put back, are ignored: the
        shutdown they ask for has happened.

        Signal handlers can only be installed from the main thread: elsewhere this
        raises ``RuntimeError`` unless ``handle_signals=False``. It also raises
        ``RuntimeError`` if the supervisor was never started (nor shut down), or if
        another thread is already waiting. Once the shutdown is over, every call
        returns the same report.
        """
        _require_main_thread("wait_on_shutdown_signal()", handle_signals)
        with self._lock:
            shutdown = self._shutdown()
            if shutdown is not None and shutdown.report is not None:
                return shutdown.report
            if self._phase is _Phase.NOT_STARTED and shutdown is None:
                raise RuntimeError(f"{self!r}: call start() before wait_on_shutdown_signal()")
            if not self._waiter.acquire(blocking=False):
                raise RuntimeError(f"{self!r}: another thread is already waiting on it")
        try:
            with self._signal_handlers() if handle_signals else contextlib.nullcontext():
                if handle_signals:
                    self._ready()
                return self._wait()
        finally:
            self._waiter.release()

    def run(self, *, handle_signals: bool = True) -> ShutdownReport:
        """:meth:`start`, then :meth:`wait_on_shutdown_signal`, and return the report.

        The SIGINT and SIGTERM handlers are installed before any process starts, so no
        signal can arrive between the two calls while the default handlers are in place.
        """
        _require_main_thread("run()", handle_signals)
        with self._signal_handlers() if handle_signals else contextlib.nullcontext():
            self.start()
            if handle_signals:
                self._ready()
            return self.wait_on_shutdown_signal(handle_signals=False)

    def _shutdown(self) -> _Shutdown | None:
        return self._shutdown_claim.get("shutdown")

    def _wait(self) -> ShutdownReport:
        # 1. Wait for a reason to stop: a signal, shutdown(), or a process ending it all.
        while (shutdown := self._shutdown()) is None:
            wakeup = self._wakeups.get()
            if wakeup == _STOP_REQUESTED:
                self.shutdown()
            elif wakeup is not None:
                reason = f"received signal {signal.Signals(wakeup).name}"
                self._begin_shutdown(ShutdownCause.SIGNAL, reason, signal_number=wakeup)
        # 2. Tell every process to finish, if the thread that began the shutdown could not
        # (a KeyboardInterrupt may have cut it short); else wait until it has told them.
        with shutdown.telling:
            if not shutdown.told:
                self._tell(shutdown)
        # 3. Wait for every process to return, until the deadline or a second signal.
        cut_short_after = self._wait_for_processes(shutdown)
        # 4. Report who finished and where the others are stuck.
        return self._finish(shutdown, cut_short_after)

    def _begin_shutdown(
        self,
        cause: ShutdownCause,
        reason: str,
        *,
        signal_number: int | None = None,
        process_name: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Begin the shutdown, if it is the first: say so (log, systemd, event), then tell
        every process to finish (no run starts from then on), and wake the waiting thread."""
        shutdown = _Shutdown(cause, reason, time.monotonic(), process_name, signal_number, error)
        # Held before the claim: whoever sees the claim waits until the processes are told.
        # (Reentrant: a hook on ShutdownStarted may wait on the supervisor.)
        with shutdown.telling:
            try:
                if self._shutdown_claim.setdefault("shutdown", shutdown) is not shutdown:
                    return
                # Read without the lock: it only counts them for the log line.
                running = self._running
                timeout = self._shutdown_timeout
                message = f"shutting down ({reason})"
                if running:
                    message += (
                        f": waiting up to {_seconds(timeout)} for {_plural(running, 'process')}"
                    )
                self._log(logging.INFO, message, reason=reason, shutdown_timeout=timeout)
                self._notify("STOPPING=1\nSTATUS=" + message.replace("\n", " "))
                self._emit(ShutdownStarted(reason, cause))
                self._tell(shutdown)
            finally:
                # Even if a KeyboardInterrupt cut this short, the waiting thread is woken: it
                # tells the processes. (SimpleQueue.put() is safe in a signal handler; an
                # Event's set() is not: a call that lost the claim does not touch one.)
                self._wakeups.put(None)
                if self._shutdown() is shutdown:
                    self._watchdog_wakeup.set()

    def _tell(self, shutdown: _Shutdown) -> None:
        """Tell every process to finish: all at once, or in reverse order on a helper
        thread (all at once if the OS refuses it). The shutdown timeout starts now."""
        shutdown.deadline = time.monotonic() + self._shutdown_timeout
        with self._lock:
            self._phase = _Phase.SHUTTING_DOWN
            procs = list(self._processes.values())
        if self._shutdown_order == "reverse":
            teller = threading.Thread(
                target=_tell_in_reverse,
                args=(procs, shutdown.deadline),
                name="supervisor-shutdown",
                daemon=True,
            )
            with contextlib.suppress(RuntimeError):
                teller.start()
                shutdown.teller = teller
        if shutdown.teller is None:
            for proc in procs:
                proc.tell()
        shutdown.told = True

    def _wait_for_processes(self, shutdown: _Shutdown) -> float | None:
        """Wait until every process has returned or the deadline has passed. A second
        signal cuts the wait short: then return how long it had waited."""
        signals = 1 if shutdown.cause is ShutdownCause.SIGNAL else 0
        while self._busy():
            left = shutdown.deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                signum = self._wakeups.get(timeout=left)
            except queue.Empty:
                continue
            if signum is None or signum == _STOP_REQUESTED:
                continue
            signals += 1
            name = signal.Signals(signum).name
            if signals == 1:
                # The shutdown had another cause: this signal asks again.
                self._log(
                    logging.INFO,
                    f"received {name} while shutting down: still waiting for processes",
                    signal=name,
                )
                continue
            waited = time.monotonic() - shutdown.started_at
            message = (
                f"received {name}, a second signal, after {_seconds(waited)}:"
                " no longer waiting for processes"
            )
            self._log(logging.WARNING, message, signal=name)
            return waited
        return None

    def _busy(self) -> bool:
        # Both under the lock: without the GIL, a read could fall between two changes.
        with self._lock:
            return self._running > 0 or self._ending > 0

    def _finish(self, shutdown: _Shutdown, cut_short_after: float | None) -> ShutdownReport:
        """The report: who finished, who had failed, and where the others are stuck."""
        with self._lock:
            procs = list(self._processes.values())
            failed = tuple(p.name for p in procs if p.state is ProcessLifecycle.FAILED)
            live = {p.name: p.thread for p in procs if p.state not in _FINAL}
        # In reverse order some may not have been told yet (a second signal, the deadline).
        for proc in procs:
            proc.tell()
        stacks = _stacks(live)
        if shutdown.cause not in (ShutdownCause.SIGNAL, ShutdownCause.REQUEST):
            exit_code = ExitCode.FATAL
        elif stacks:
            exit_code = ExitCode.UNFINISHED
        else:
            exit_code = ExitCode.OK
        if shutdown.teller is not None and not live:
            # Every process has ended: the teller is on its way out.
            shutdown.teller.join()
        report = ShutdownReport(
            shutdown.reason,
            shutdown.cause,
            tuple(p.name for p in procs if p.name not in stacks),
            tuple(stacks),
            time.monotonic() - shutdown.started_at,
            exit_code,
            shutdown.process_name,
            shutdown.signal_number,
            shutdown.error,
            types.MappingProxyType(stacks),
            failed,
            cut_short_after is not None,
        )
        self._log_report(report, cut_short_after)
        with self._lock:
            self._phase = _Phase.STOPPED
            shutdown.report = report
        self._emit(ShutdownFinished(report))
        return report

    def _log_report(self, report: ShutdownReport, cut_short_after: float | None) -> None:
        if cut_short_after is None:
            late = f"did not finish within {_seconds(self._shutdown_timeout)}"
        else:
            late = "did not finish before a second signal cut the wait short after "
            late += _seconds(cut_short_after)
        for name, stack in report.stacks.items():
            self._log(
                logging.ERROR,
                f"process {name!r} {late}; it is stuck at:\n{stack.rstrip()}",
                process_name=name,
                stack=stack,
            )
        failed = ", ".join(map(repr, report.failed))
        if report.unfinished:
            summary = f"{_plural(len(report.unfinished), 'process')} {late}: "
            summary += ", ".join(map(repr, report.unfinished))
            if failed:
                summary += f"; {_plural(len(report.failed), 'process')} had failed: {failed}"
        else:
            count = _plural(len(report.finished), "process")
            summary = f"{count} finished in {_seconds(report.duration)}"
            if failed:
                summary += f", {len(report.failed)} of them had failed: {failed}"
        level = logging.WARNING if report.unfinished else logging.INFO
        self._log(level, summary, number_of_unfinished_processes=len(report.unfinished))

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Route SIGINT and SIGTERM to the waiting thread; restore the old handlers after.

        Our handlers go in first and come out last, and they only queue the signal, so
        no KeyboardInterrupt can cut the swap short. A signal delivered to another thread
        runs no Python handler until the main thread wakes up, so a relay thread wakes
        it from the wake-up fd. The caller has checked that this is the main thread.
        """
        previous = {signum: signal.getsignal(signum) for signum in _SHUTDOWN_SIGNALS}
        try:
            for signum in previous:
                signal.signal(signum, lambda number, frame: self._wakeups.put(number))
            # From here on no KeyboardInterrupt can come: nothing below can leak.
            reader, writer = socket.socketpair()
            relay = threading.Thread(
                target=self._relay, args=(reader,), name="supervisor-signals", daemon=True
            )
            previous_fd = None
            try:
                writer.setblocking(False)
                relay.start()
                previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
                yield
            finally:
                if previous_fd is not None:
                    signal.set_wakeup_fd(previous_fd)
                # The relay reads the end of the stream and returns.
                writer.close()
                if relay.ident is not None:
                    relay.join()
                reader.close()
        finally:
            # SIGINT last: it may raise.
            for number, handler in reversed(previous.items()):
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _relay(self, reader: socket.socket) -> None:
        while reader.recv(64):
            self._wakeups.put(None)

    # -- remove() and status() -------------------------------------------------

    def remove(self, name: str, timeout: float | None = None) -> bool:
        """Stop one process and wait up to ``timeout`` seconds (None: no limit) for it.

        Sets that process's own finish signal. It is not restarted, and removing a fatal
        process does not shut the supervisor down. Returns whether it returned in time;
        once it has, it is forgotten (no longer in :meth:`status` or the report) and its
        name may be registered again. Called by the process itself, it cannot wait and
        returns False. It does not wait for the process's last log line, so it may be
        called from a log handler. Raises :class:`UnknownProcessError` for a name that
        is not registered.
        """
        _check_name(name)
        if timeout is not None:
            _check_number("Supervisor.remove.timeout", timeout)
        with self._lock:
            proc = self._processes.get(name)
            if proc is None:
                raise UnknownProcessError(f"no process named {name!r} is registered")
            proc.removing = True
            if proc.group is not None:
                # It will not run again: its group restart does not wait for it.
                proc.group.leave(proc)
            if proc.thread is None or proc.state in _FINAL:
                self._forget(proc)
        proc.tell()
        if proc.thread is threading.current_thread():
            return False
        return proc.ended.wait(timeout)

    def status(self) -> Mapping[str, ProcessStatus]:
        """A consistent snapshot of every registered process, taken under the lock."""
        with self._lock:
            rows = [
                (
                    p.name,
                    p.state,
                    p.attempt,
                    p.recovered_num,
                    p.restarts,
                    p.last_error,
                    p.since,
                    p.thread,
                )
                for p in self._processes.values()
            ]
        # repr() of an error may run user code, so it runs outside the lock.
        return {
            name: ProcessStatus(
                name,
                state,
                attempt,
                recovered,
                restarts,
                None if error is None else _describe(error, 10_000),
                since,
                None if thread is None else thread.name,
            )
            for name, state, attempt, recovered, restarts, error, since, thread in rows
        }

    # -- nesting --------------------------------------------------------------

    def as_process(self) -> ProcessFunc:
        """This supervisor as a process of a parent supervisor.

        Each run starts this (child) supervisor afresh, its processes with fresh
        counters, and waits. When the parent sets the run's finish signal, the child
        shuts down gracefully (within its own ``shutdown_timeout``) and the run returns
        None. When the child shuts itself down (a fatal process, TerminateSupervisor,
        the restart limit), the run returns :class:`SupervisorFailed`, which the
        parent's policy handles. The function must be run by a parent
        :class:`Supervisor`; the child must not be started by other means.
        """

        def run_child_supervisor(
            finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
        ) -> Exception | None:
            if not isinstance(finish_signal, _FinishSignal):
                raise TypeError("as_process() must be run by a Supervisor (its finish signal)")
            self._reset_for_rerun()
            # The child's shutdown runs on this thread, its waiting thread, not the parent's.
            finish_signal.on_set = lambda: self._wakeups.put(_STOP_REQUESTED)
            try:
                if finish_signal.is_set():
                    self.shutdown()
                try:
                    self.start()
                except BaseException:
                    # A thread refused: stop the processes that did start.
                    self.shutdown()
                    self.wait_on_shutdown_signal(handle_signals=False)
                    raise
                report = self.wait_on_shutdown_signal(handle_signals=False)
            finally:
                finish_signal.on_set = None
            if report.cause is ShutdownCause.REQUEST:
                return None
            return SupervisorFailed(report)

        return run_child_supervisor

    def _reset_for_rerun(self) -> None:
        with self._lock:
            if self._phase is not _Phase.STOPPED:
                if self._phase is not _Phase.NOT_STARTED or self._shutdown() is not None:
                    raise RuntimeError(f"{self!r} is already running")
                return
            # A thread cannot be killed: never run a second copy beside one that still runs.
            stuck = [name for name, p in self._processes.items() if p.state not in _FINAL]
            if stuck:
                raise RuntimeError(f"{self!r} cannot start afresh: {stuck} have not returned")
            now = self._clock()
            self._processes = {
                name: _Process(name, p.function, p.options, now)
                for name, p in self._processes.items()
            }
            self._start_afresh()

    # -- group restarts (RestartStrategy) ----------------------------------------

    def _plan_group_restart(self, proc: _Process, now: float) -> _Group | None:
        """Under the lock: the processes that restart with the failed ``proc``, as the
        strategy says, each marked RESTARTING; None if there are none."""
        if self._strategy == "one_for_one":
            return None
        procs = list(self._processes.values())
        if self._strategy == "rest_for_one":
            procs = procs[procs.index(proc) + 1 :]
        members = [
            p
            for p in procs
            if p is not proc and p.group is None and not p.removing and p.state in _RESTARTABLE
        ]
        if not members:
            return None
        group = _Group(members)
        for member in members:
            member.group = group
            member.resume.clear()
            member.enter(ProcessLifecycle.RESTARTING, now)
        return group

    def _restart_group(self, proc: _Process, group: _Group, delay: float) -> None:
        """A group restart, on the failed process's thread: stop the group, wait for it
        to return (up to ``shutdown_timeout``) and for this process's own wait, then let
        the group run again."""
        deadline = time.monotonic() + self._shutdown_timeout
        for member in group.members:
            member.finish_signal.set()
        names = tuple(m.name for m in group.members)
        self._log(
            logging.WARNING,
            f"process {proc.name!r} failed: restarting {', '.join(map(repr, names))} with it",
            process_name=proc.name,
        )
        self._emit(GroupRestart(proc.name, names))
        proc.finish_signal.wait(delay)
        if self._shutdown() is None:
            group.returned.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            # (A removed member has left the group: it is not late.)
            late = [m for m in group.members if m in group.pending and m.state not in _FINAL]
            for member in group.members:
                member.group = None
        if late:
            # The shutdown first: no member may start again.
            within = f"within {_seconds(self._shutdown_timeout)} for a group restart"
            reason = f"process {late[0].name!r} did not stop {within} (after {proc.name!r} failed)"
            self._begin_shutdown(ShutdownCause.FATAL_PROCESS, reason, process_name=late[0].name)
        for member in group.members:
            member.resume.set()

    def _rejoin(self, proc: _Process, group: _Group) -> bool:
        """A process stopped for a group restart waits until its group may run again,
        then gets a fresh finish signal; False if it must stop instead (a shutdown, a
        removal, or options that never run it again)."""
        with self._lock:
            group.leave(proc)
        proc.resume.wait()
        with self._lock:
            if self._shutdown() is not None or proc.removing or _never_restarted(proc.options):
                return False
            proc.finish_signal = _FinishSignal()
            return True

    # -- the watchdog and systemd ------------------------------------------------

    def _start_watchdog(self) -> None:
        """Start the watchdog thread, unless it runs its loop; wake it to look again."""
        with self._lock:
            if self._watchdog is None:
                watchdog = threading.Thread(
                    target=self._watch, name="supervisor-watchdog", daemon=True
                )
                watchdog.start()
                self._watchdog = watchdog
        self._watchdog_wakeup.set()

    def _watch(self) -> None:
        """One thread for every process: it marks a run silent for longer than its
        ``heartbeat_timeout`` as stalled, and pings systemd's watchdog while none is.
        It sleeps until the next deadline or ping (a run that starts wakes it), and
        ends with the shutdown."""
        next_ping = 0.0
        while True:
            now = time.monotonic()
            wake = now + _MAX_WAIT
            healthy = True
            stalled = []
            with self._lock:
                if self._shutdown() is not None:
                    self._watchdog = None
                    return
                for proc in self._processes.values():
                    timeout = proc.options.heartbeat_timeout
                    if timeout is None or proc.removing:
                        continue
                    if proc.state is ProcessLifecycle.RUNNING and proc.beat + timeout <= now:
                        proc.enter(ProcessLifecycle.STALLED, self._clock())
                        stalled.append((proc, now - proc.beat))
                    if proc.state is ProcessLifecycle.STALLED:
                        healthy = False
                    if proc.state is ProcessLifecycle.RUNNING:
                        wake = min(wake, proc.beat + timeout)
            for proc, silent in stalled:
                self._stalled(proc, silent)
            if self._ping_every and healthy:
                if now >= next_ping:
                    self._notify("WATCHDOG=1")
                    next_ping = now + self._ping_every
                wake = min(wake, next_ping)
            if self._watchdog_wakeup.wait(max(0.0, wake - time.monotonic())):
                self._watchdog_wakeup.clear()

    def _stalled(self, proc: _Process, silent: float) -> None:
        """A run is stalled: where it is stuck (before a shutdown tells it to finish), the
        log line and the event, then the shutdown if the process is fatal."""
        stack = _stacks({proc.name: proc.thread}).get(proc.name, "")
        reason = f"process {proc.name!r} stalled: no heartbeat for {_seconds(silent)}"
        if proc.options.is_fatal:
            reason = "fatal " + reason
        then = "; shutting down" if proc.options.is_fatal else ""
        self._log(
            logging.ERROR,
            f"{reason}{then}; it is stuck at:\n{stack.rstrip()}",
            process_name=proc.name,
            stack=stack,
        )
        self._emit(ProcessStalled(proc.name, silent, stack))
        if proc.options.is_fatal:
            self._begin_shutdown(ShutdownCause.FATAL_PROCESS, reason, process_name=proc.name)

    def _resumed(self, proc: _Process, silent: float) -> None:
        with self._lock:
            if proc.state is not ProcessLifecycle.STALLED:
                return
            proc.enter(ProcessLifecycle.RUNNING, self._clock())
        # It has a deadline again.
        self._watchdog_wakeup.set()
        self._log(
            logging.WARNING,
            f"process {proc.name!r} resumed: a heartbeat after {_seconds(silent)}",
            process_name=proc.name,
        )

    def _ready(self) -> None:
        """Under systemd, say that the processes run, and start the pings it asks for."""
        address = os.environ.get("NOTIFY_SOCKET", "")
        if not self._systemd_notify or not address or self._shutdown() is not None:
            return
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._notify_to = address
        self._notify(f"READY=1\nSTATUS=running {_plural(len(self._processes), 'process')}")
        usec = os.environ.get("WATCHDOG_USEC")
        if usec is None or os.environ.get("WATCHDOG_PID") not in (None, str(os.getpid())):
            return
        # As systemd's sd_watchdog_enabled(): decimal digits, above 0.
        if not (usec.isascii() and usec.isdigit() and len(usec) <= 16 and int(usec) > 0):
            self._log(
                logging.WARNING,
                f"WATCHDOG_USEC={usec[:40]!r} is not a number of microseconds: no pings",
            )
            return
        self._ping_every = int(usec) / 2e6
        self._start_watchdog()

    def _notify(self, message: str) -> None:
        """Send systemd a notification (sd_notify); a failure is logged once."""
        address = self._notify_to
        if not address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # A full queue drops this message: never block.
                sock.setblocking(False)
                sock.sendto(message.encode(errors="backslashreplace"), address)
        except BlockingIOError:
            pass
        except OSError as exc:
            self._notify_to = ""
            self._log(logging.WARNING, f"could not notify systemd at {address!r}: {exc}")

    # -- the terminate channel, logging and events ---------------------------------

    def _terminate_channel_put(self, name: str, /) -> None:
        """``terminate_channel.put(name)``: a process announces its termination."""
        if not isinstance(name, str):
            raise TypeError(f"terminate_channel.put() takes a process name, got {name!r}")
        if name not in self._processes:
            self._log(
                logging.WARNING, f"terminate channel: no process named {name!r}", process_name=name
            )
            return
        self._log(logging.INFO, f"process {name!r} announced its termination", process_name=name)

    def _log(
        self, level: int, message: str, *, exc_info: BaseException | None = None, **fields: object
    ) -> None:
        """Log a line; a handler or filter that raises must not stop supervision."""
        try:
            self._logger.log(level, message, exc_info=exc_info, extra=fields)
        except BaseException:
            with contextlib.suppress(Exception):
                sys.stderr.write(f"supervisor: could not log {message!r}\n{traceback.format_exc()}")

    def _emit(self, event: SupervisorEvent) -> None:
        """Hand an event to the hook; whatever the hook raises must not stop supervision."""
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except BaseException as exc:
            text = _describe(event)
            self._log(logging.ERROR, f"event hook failed on {text}", event=text, exc_info=exc)


# ---------------------------------------------------------------------------
# Private helpers


def _tell_in_reverse(procs: list[_Process], deadline: float) -> None:
    """Tell each process to finish, the last registered first, each after every later
    one has ended (its end said, as 1.0 joined its thread) or the deadline has passed."""
    for proc in reversed(procs):
        proc.tell()
        # A thread not started yet (or refused) has nothing to wait for.
        if proc.thread is not None and proc.thread.is_alive():
            proc.thread.join(max(0.0, deadline - time.monotonic()))


def _returned_a_bug(name: str, result: object) -> TypeError:
    """A run returned neither None nor an exception: a bug, handled as a crash. (The
    result's repr is not used: it may fail or hang.)"""
    hint = "expected None or an Exception"
    if isinstance(result, bool):
        hint += " (finish_signal.wait() returns a bool: return None)"
    if inspect.iscoroutine(result):
        # Closed, so that Python does not warn that it was never awaited.
        result.close()
        hint = "a process runs on a thread: see the asyncio recipe in docs/faq.md"
    return TypeError(f"process {name!r} returned a {type(result).__name__} object; {hint}")


# Two readers at once would restore each other's long switch interval.
_STACKS_LOCK: Final = threading.Lock()


def _stacks(threads: Mapping[str, threading.Thread | None]) -> dict[str, str]:
    """The stack of each process's function, from its thread, while the function runs:
    the calls below the supervisor's own ``_run``.

    The frames of a running thread change under the reader, which can crash CPython
    3.11 (cpython#99110): they are copied while no other thread runs (no I/O and a long
    switch interval for those microseconds), and formatted after. On a free-threaded
    build the switch interval stops no thread: there the copy is best effort."""
    summaries = {}
    with _STACKS_LOCK:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1.0)
        try:
            frames = sys._current_frames()
            for name, thread in threads.items():
                frame = None if thread is None else frames.get(thread.ident or 0)
                calls = []
                while frame is not None and frame.f_code is not _RUN_CODE:
                    calls.append((frame, frame.f_lineno))
                    frame = frame.f_back
                if frame is not None and calls:
                    summaries[name] = traceback.StackSummary.extract(
                        reversed(calls), lookup_lines=False
                    )
        finally:
            sys.setswitchinterval(interval)
    return {name: "".join(summary.format()) for name, summary in summaries.items()}


_RUN_CODE: Final = Supervisor._run.__code__


def _describe(value: object, limit: int = 200) -> str:
    """``repr(value)``, at most ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except BaseException:
        # User code: an error must stay reportable whatever its repr does.
        text = f"<{type(value).__name__} object (repr() failed)>"
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{round(value, 3)} s"


def _plural(count: int, noun: str) -> str:
    plural = {"process": "processes", "recovery": "recoveries"}.get(noun, noun + "s")
    return f"{count} {noun if count == 1 else plural}"


def _require_main_thread(what: str, handle_signals: bool) -> None:
    if handle_signals and threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{what} must run on the main thread, which alone can install signal handlers;"
            " pass handle_signals=False to call it from another thread"
        )


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"process name must be a str, got {_describe(name)}")
    if not name.strip():
        raise ValueError(f"process name must not be empty, got {name!r}")


def _check_process(name: str, process: object) -> None:
    if not callable(process):
        raise TypeError(f"process {name!r} must be callable, got {_describe(process)}")
    # An object's __call__ may be async too.
    method = getattr(process, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(process) or inspect.iscoroutinefunction(method):
        raise TypeError(
            f"process {name!r} is an async function, but processes run on threads:"
            " register a plain function that runs the event loop (see the asyncio"
            " recipe in docs/faq.md)"
        )
    try:
        signature = inspect.signature(process)
    except (TypeError, ValueError):
        # No readable signature (some builtins): accepted.
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise TypeError(
            f"process {name!r} must accept three positional arguments (finish_signal,"
            f" process_name, terminate_channel), but {_describe(process)} takes "
            f"{signature}"
        ) from None


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be a bool, got {_describe(value)}")


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {_describe(value)}")


def _check_count(field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, got {_describe(value)}")
    if value < minimum:
        raise ValueError(f"{field} must be >= {minimum}, got {_describe(value)}")


def _check_number(
    field: str, value: object, low: float = 0.0, high: float = _MAX_WAIT, *, positive: bool = False
) -> float:
    """``value`` as a finite float from ``low`` (or above 0, if ``positive``) to
    ``high``; a duration by default (no wait can be longer than
    ``threading.TIMEOUT_MAX``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be an int or a float, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        # An int too large for a float.
        number = math.inf
    if low <= number <= high and math.isfinite(number) and (number > 0 or not positive):
        return number
    top = {_MAX_WAIT: "threading.TIMEOUT_MAX", math.inf: "any"}.get(high, f"{high:g}")
    span = f"above 0, up to {top}" if positive else f"from {low:g} to {top}"
    raise ValueError(f"{field} must be a finite number {span}, got {_describe(value, 40)}")
