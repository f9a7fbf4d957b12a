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
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT", "EXIT_FATAL", "EXIT_OK", "EXIT_UNFINISHED",
    "LOG_NS_SUPERVISOR", "PROCESS_RECOVER_COUNT", "PROCESS_RECOVER_INTERVAL",
    "PROCESS_RETRY_COUNT", "PROCESS_RETRY_INTERVAL", "DoNotRestart", "ExitCode",
    "GroupRestart", "ProcessFailed", "ProcessFunc", "ProcessGaveUp", "ProcessLifecycle",
    "ProcessOption", "ProcessStalled", "ProcessStarted", "ProcessStatus", "ProcessStopped",
    "ProcessWaiting", "RestartStrategy", "ShutdownCause", "ShutdownFinished", "ShutdownOrder",
    "ShutdownReport", "ShutdownStarted", "Supervisor", "SupervisorEvent", "SupervisorFailed",
    "TerminateChannel", "TerminateSupervisor", "UnknownProcessError", "heartbeat",
]

__version__ = "2.0.0"

# ---------------------------------------------------------------------------
# Constants (the Go package's, durations in float seconds)

PROCESS_RETRY_COUNT: Final = 3
PROCESS_RETRY_INTERVAL: Final = 3.0
PROCESS_RECOVER_COUNT: Final = 10
PROCESS_RECOVER_INTERVAL: Final = 2.0
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Final = 5.0
LOG_NS_SUPERVISOR: Final = "supervisor"


class ExitCode(enum.IntEnum):
    """The exit code a program should end with: :attr:`ShutdownReport.exit_code`."""

    OK = 0
    """A signal or a request stopped the supervisor and every process finished."""
    FATAL = 1
    """A fatal process ended, a process asked to terminate, or restarts hit their limit."""
    UNFINISHED = 2
    """A signal or a request stopped the supervisor, but a process did not finish."""

    __str__ = int.__repr__  # "0", as Python 3.11+ prints an IntEnum ("ExitCode.OK" on 3.10)


EXIT_OK: Final = ExitCode.OK
EXIT_FATAL: Final = ExitCode.FATAL
EXIT_UNFINISHED: Final = ExitCode.UNFINISHED

_SHUTDOWN_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_MAX_WAIT: Final = threading.TIMEOUT_MAX  # no wait can be longer
_ABOVE_0: Final = 1e-9  # the least duration where 0 is not allowed

# ---------------------------------------------------------------------------
# Exceptions and enums


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
    """It returned for good: None, DoNotRestart, TerminateSupervisor, or at shutdown."""
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
"""``"parallel"``: no process waits for another. Those not running their function and
the first 128 that are get their finish signal at once, the others a few at a time (the
next as one returns, twice as many in each millisecond in which none did), all at the
deadline: thousands of threads woken at once would fight over the interpreter.
``"reverse"``: in reverse registration order, each after every later process has
returned (or the shutdown timeout has run out)."""

RestartStrategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""Which processes restart when one fails and will run again (Erlang/OTP's names):
``"one_for_one"`` only that one; ``"one_for_all"`` every process; ``"rest_for_one"``
that one and every process registered after it."""

# The restart path's members, bound once: an Enum attribute lookup costs as much as a call.
_RUNNING, _REGISTERED = ProcessLifecycle.RUNNING, ProcessLifecycle.REGISTERED
_STALLED, _GAVE_UP = ProcessLifecycle.STALLED, ProcessLifecycle.FAILED
_TO_RETRY, _TO_RECOVER = ProcessLifecycle.WAITING_TO_RETRY, ProcessLifecycle.WAITING_TO_RECOVER
_FINAL: Final = frozenset({ProcessLifecycle.FINISHED, _GAVE_UP, ProcessLifecycle.REMOVED})

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

It should run until ``finish_signal`` is set and then return None promptly: a thread
cannot be killed, so a process that ignores its finish signal is left running (and
named in the shutdown report). Returning an exception asks for a retry; raising is a
crash that the recover policy handles. Returning anything else is a bug, handled as a
crash (a ``TypeError``).
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
      with fresh retry and recover counters and a fresh backoff (None: never).
    - ``heartbeat_timeout``: a run that goes longer than this without a :func:`heartbeat`
      is stalled (None: no watchdog). A thread cannot be killed: a stalled process is
      reported, and a fatal one shuts the supervisor down.
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
        for field, low, high in _NUMBER_FIELDS:
            if (value := getattr(self, field)) is not None or field in _REQUIRED_FIELDS:
                number = _check_number(f"ProcessOption.{field}", value, low, high)
                object.__setattr__(self, field, number)  # stored as a float
        for field, default in (("retry_interval", PROCESS_RETRY_INTERVAL),
                               ("recover_interval", PROCESS_RECOVER_INTERVAL)):
            interval, cap = getattr(self, field), self.max_interval
            if cap is not None and cap < interval:
                given = f"{interval!r}, the default" if interval == default else repr(interval)
                raise ValueError(f"ProcessOption.max_interval ({cap!r}) is below {field} ({given}):"
                                 f" give {field} at most {cap!r}, or a larger max_interval")


_NUMBER_FIELDS: Final = (("recover_interval", 0.0, _MAX_WAIT), ("retry_interval", 0.0, _MAX_WAIT),
                         ("backoff_factor", 1.0, math.inf), ("jitter", 0.0, 1.0),
                         ("max_interval", 0.0, _MAX_WAIT), ("reset_after", 0.0, _MAX_WAIT),
                         ("heartbeat_timeout", _ABOVE_0, _MAX_WAIT))
_REQUIRED_FIELDS: Final = ("recover_interval", "retry_interval", "backoff_factor", "jitter")


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
    TerminateSupervisor, an error returned during shutdown, or None)."""

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
    """A shutdown began; ``reason`` is the report's."""

    reason: str
    cause: ShutdownCause


@dataclasses.dataclass(frozen=True, slots=True)
class ShutdownFinished:
    """A shutdown ended with this report."""

    report: ShutdownReport


SupervisorEvent: TypeAlias = (ProcessStarted | ProcessFailed | ProcessWaiting | ProcessGaveUp
                              | ProcessStopped | GroupRestart | ProcessStalled | ShutdownStarted
                              | ShutdownFinished)


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStatus:
    """A snapshot of one process (Go's ``ProcessState``, with more in it).

    ``since`` is the ``time.monotonic()`` at which the process entered ``state``;
    ``last_error`` is the repr of the last exception it returned or raised;
    ``thread_name`` is its thread's name as of the process's last change (a thread that
    renames itself shows the new name at the next change).
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
    - ``unfinished``: every process whose function was still running when the wait
      ended; ``stacks`` maps each to the stack of its function.
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


class _Current(threading.local):
    """The process (and its supervisor) whose function runs on this thread, if any."""

    process: _Process | None = None
    supervisor: Supervisor | None = None


_current = _Current()


def heartbeat() -> None:
    """Tell the supervisor that the process running on this thread is alive.

    Call it from a process with a ``heartbeat_timeout``, anywhere below its function,
    more often than that timeout. On a thread that no supervisor runs it does nothing,
    so process code runs in unit tests without one. It takes no lock, unless the
    process was stalled.
    """
    if (proc := _current.process) is not None:
        last, proc.beat = proc.beat, time.monotonic()
        if proc.state is _STALLED and _current.supervisor is not None:
            _current.supervisor._resumed(proc, proc.beat - last)


# ---------------------------------------------------------------------------
# The supervisor


class Supervisor:
    """Runs registered processes on threads, restarts them, and stops them gracefully.

    ``shutdown_timeout`` (seconds; 0 means the default, as in Go) bounds the graceful
    shutdown. ``logger`` gets a child named ``"supervisor"``; by default the logger is
    ``logging.getLogger("supervisor")``. ``on_event`` receives every
    :data:`SupervisorEvent`; it is called outside the lock, and an exception in it is
    logged and ignored. ``shutdown_order`` is ``"parallel"`` or ``"reverse"``.

    ``strategy`` says which processes restart with a failed one (:data:`RestartStrategy`).
    ``max_restarts`` (None: no limit) and ``max_seconds`` are the restart intensity: a
    restart that would make more than ``max_restarts`` within ``max_seconds`` shuts the
    supervisor down instead (``ShutdownCause.RESTART_LIMIT``).

    Under systemd (``NOTIFY_SOCKET`` set), a supervisor that handles signals (``run()``,
    or ``wait_on_shutdown_signal()``) sends ``READY=1`` once its processes run,
    ``STOPPING=1`` when the shutdown begins, and, with ``WATCHDOG_USEC``, ``WATCHDOG=1``
    every half of it while no process is stalled; ``systemd_notify=False`` turns it off.

    All methods are thread-safe. :meth:`wait_on_shutdown_signal` is meant for the main
    thread, which owns signal handling. Tests may replace ``_clock`` (which times runs
    and the restart window, and paces a shutdown) and ``_random`` (which draws the jitter).
    """

    def __init__(
        self, shutdown_timeout: float = DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        logger: logging.Logger | None = None, *,
        on_event: Callable[[SupervisorEvent], object] | None = None,
        shutdown_order: ShutdownOrder = "parallel", strategy: RestartStrategy = "one_for_one",
        max_restarts: int | None = None, max_seconds: float = 5.0, systemd_notify: bool = True,
    ) -> None:
        timeout = _check_number("Supervisor.shutdown_timeout", shutdown_timeout)
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"Supervisor.logger must be a logging.Logger or None, got {logger!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"Supervisor.on_event must be callable or None, got {on_event!r}")
        _check_bool("Supervisor.systemd_notify", systemd_notify)
        _check_choice("Supervisor.shutdown_order", shutdown_order, get_args(ShutdownOrder))
        _check_choice("Supervisor.strategy", strategy, get_args(RestartStrategy))
        if max_restarts is not None:
            _check_count("Supervisor.max_restarts", max_restarts, 0)
        self._max_seconds = _check_number("Supervisor.max_seconds", max_seconds, low=_ABOVE_0)
        self._max_restarts, self._strategy = max_restarts, strategy
        self._shutdown_timeout = timeout or DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
        self._logger = (logger or logging.getLogger()).getChild(LOG_NS_SUPERVISOR)
        self._on_event, self._shutdown_order = on_event, shutdown_order
        self._clock, self._random = time.monotonic, random.Random().random  # seams for tests
        self._channel = types.SimpleNamespace(put=self._announce)  # the terminate channel
        # Wakes the waiting thread: a signal number, or None for "look again".
        self._wakeups: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        # The first shutdown stored here is the one: setdefault claims it in one step
        # that a signal handler running on the same thread cannot split.
        self._claims: dict[str, _Shutdown] = {}
        # _lock guards every field below and each _Process's mutable fields. It is
        # reentrant because a signal handler may call shutdown() on a thread that holds it.
        self._lock = threading.RLock()
        self._processes: dict[str, _Process] = {}  # in registration order
        self._phase = _Phase.NOT_STARTED
        # Supervision loops that have not ended, and ended ones still logging (see _end).
        self._running = self._ending = 0
        self._waiter = threading.Lock()  # held by the thread inside wait_on_shutdown_signal
        self._report: ShutdownReport | None = None
        self._restart_times: collections.deque[float] = collections.deque()  # max_restarts
        self._systemd_notify, self._notify_to = systemd_notify, ""  # the address, once known
        self._ping_every = 0.0  # systemd's watchdog: seconds between pings (0: off)
        self._watchdog: threading.Thread | None = None  # see _watch
        # The watchdog looks again; a process returned during the shutdown (_tell_in_turn).
        self._watchdog_wakeup, self._returned = threading.Event(), threading.Event()

    def __repr__(self) -> str:
        return f"<Supervisor {self._phase.value}, {len(self._processes)} processes>"

    # -- registration and start ---------------------------------------------

    def register(self, name: str, process: ProcessFunc, options: ProcessOption | None = None
                 ) -> None:
        """Add a process; once :meth:`start` has run, it starts at once.

        Raises ``TypeError`` or ``ValueError`` for a name that is not a non-empty str,
        a name already registered (a removed process's name may be reused once it has
        returned), a process that cannot be called as ``process(finish_signal,
        process_name, terminate_channel)``, or options that are not a
        :class:`ProcessOption`; ``RuntimeError`` once the shutdown has begun.
        """
        _check_name(name)
        _check_process(name, process)
        options = ProcessOption() if options is None else options
        if not isinstance(options, ProcessOption):
            raise TypeError(f"options for {name!r} must be a ProcessOption, got {options!r}")
        with self._lock:
            if self._claims or self._phase is _Phase.STOPPED:
                raise RuntimeError(f"{self!r} is shutting down; cannot register {name!r}")
            if name in self._processes:  # (a removed process is forgotten once it returned)
                raise ValueError(f"process name {name!r} is already registered")
            proc = self._processes[name] = _Process(name, process, options, self._clock())
            if self._phase is _Phase.RUNNING:
                self._launch([proc])

    def start(self) -> None:
        """Start a thread for each registered process.

        Raises ``RuntimeError`` if the supervisor is running already. After a shutdown
        has begun it starts nothing (a warning is logged), so a ``start()`` racing
        ``shutdown()`` is safe. If the OS refuses a thread, that process and those after
        it fail without running, and the error is raised.
        """
        with self._lock:
            if self._phase is _Phase.RUNNING:
                raise RuntimeError(f"{self!r} was already started")
            if not self._claims and self._phase is _Phase.NOT_STARTED:
                self._phase = _Phase.RUNNING
                return self._launch(list(self._processes.values()))
        self._log(logging.WARNING, "start() after the shutdown began: no process started")

    def _launch(self, procs: list[_Process]) -> None:
        """Start a thread for each process, under the lock (so every thread that exists
        has started); a thread the OS refuses fails its process and those after it."""
        for index, proc in enumerate(procs):  # (a removed process is forgotten: not here)
            thread = threading.Thread(target=self._supervise, args=(proc,), name=proc.name,
                                      daemon=True)
            try:
                thread.start()
            except BaseException as exc:
                for refused in procs[index:]:
                    refused.last_error = exc
                    refused.enter(ProcessLifecycle.FAILED, self._clock())
                raise
            proc.thread, proc.changes = thread, proc.changes + 1
            self._running += 1
            if proc.options.heartbeat_timeout is not None:
                self._start_watchdog()

    # -- shutdown -----------------------------------------------------------

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as a signal does; never blocks.

        Safe from any thread, a process or a signal handler included, and idempotent:
        only the first call (or signal, or fatal process) counts. Every process is told:
        at once if it is not running its function, else a few at a time (see
        :data:`ShutdownOrder`); :meth:`wait_on_shutdown_signal` waits for them and returns
        the report.
        """
        self._begin_shutdown(ShutdownCause.REQUEST, "shutdown() was called")

    def wait_on_shutdown_signal(self, *, handle_signals: bool = True) -> ShutdownReport:
        """Block until a shutdown, carry it out gracefully, and return its report.

        A shutdown begins with SIGINT or SIGTERM (while this method runs, its handlers
        replace the previous ones, which are restored when it returns), with
        :meth:`shutdown`, or with the end of a fatal process. Every process's finish
        signal is then set, and this method returns as soon as every process has
        returned, or after ``shutdown_timeout`` at the latest; a second signal during
        the shutdown stops the wait at once. Signals that arrive after that, until the
        handlers are put back, are ignored: the shutdown they ask for has happened.

        Signal handlers can only be installed from the main thread: elsewhere this
        raises ``RuntimeError`` unless ``handle_signals=False``. It also raises
        ``RuntimeError`` if the supervisor was never started (nor shut down), or if
        another thread is already waiting. Once the shutdown is over, every call
        returns the same report.
        """
        _require_main_thread("wait_on_shutdown_signal()", handle_signals)
        with self._lock:
            if self._report is not None:
                return self._report
            if self._phase is _Phase.NOT_STARTED and not self._claims:
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

    def _wait(self) -> ShutdownReport:
        # 1. Wait for a reason to stop: a signal, shutdown(), or a process ending it all.
        while (shutdown := self._claims.get("shutdown")) is None:
            if (signum := self._wakeups.get()) is not None:
                reason = f"received signal {signal.Signals(signum).name}"
                self._begin_shutdown(ShutdownCause.SIGNAL, reason, signum)
        # 2. Tell every process to finish (again: an interrupted shutdown() may not have).
        with self._lock:
            self._phase = _Phase.SHUTTING_DOWN
            procs = list(self._processes.values())
        self._tell(shutdown, procs)
        reason, timeout = shutdown.reason(), self._shutdown_timeout
        message = f"shutting down ({reason}): waiting up to {_seconds(timeout)} for "
        message += _plural(shutdown.running, "process")
        self._log(logging.INFO, message, reason=reason, shutdown_timeout=timeout)
        self._notify("STOPPING=1\nSTATUS=" + message.replace("\n", " "))
        self._emit(ShutdownStarted(reason, shutdown.cause))
        # 3. Wait for every process to return, until the deadline or a second signal.
        self._wait_for_processes(shutdown)
        shutdown.hurried = True  # those not told yet are told now
        self._returned.set()
        if shutdown.pacer is not None and shutdown.pacer.ident is not None:
            shutdown.pacer.join()
        # 4. Report who finished and where the others are stuck.
        return self._finish(shutdown, reason)

    def _wait_for_processes(self, shutdown: _Shutdown) -> None:
        """Wait until every process has returned, or the deadline, or a second signal."""
        signals = int(shutdown.cause is ShutdownCause.SIGNAL)
        while self._busy() and time.monotonic() < shutdown.deadline:
            try:  # (every end is told before ShutdownFinished)
                signum = self._wakeups.get(timeout=max(0.0, shutdown.deadline - time.monotonic()))
            except queue.Empty:
                continue
            if signum is None:
                continue
            signals, name = signals + 1, signal.Signals(signum).name
            if signals == 1:  # the shutdown had another cause: this signal asks again
                message = f"received {name} while shutting down: still waiting for processes"
                self._log(logging.INFO, message, signal=name)
                continue
            message = f"received {name} again: no longer waiting for processes"
            return self._log(logging.WARNING, message, signal=name)

    def _busy(self) -> bool:
        with self._lock:  # (both at once: without the GIL, a read could fall between them)
            return bool(self._running or self._ending)

    def _finish(self, shutdown: _Shutdown, reason: str) -> ShutdownReport:
        with self._lock:
            names = list(self._processes)
            live = [(p.name, p.thread) for p in self._processes.values() if p.state not in _FINAL]
        stacks = _stacks(dict(live))
        fatal = shutdown.cause not in (ShutdownCause.SIGNAL, ShutdownCause.REQUEST)
        exit_code = ExitCode.FATAL if fatal else ExitCode.UNFINISHED if stacks else ExitCode.OK
        report = ShutdownReport(
            reason, shutdown.cause, tuple(n for n in names if n not in stacks), tuple(stacks),
            time.monotonic() - shutdown.started_at, exit_code, shutdown.process_name,
            shutdown.signal_number, shutdown.error, types.MappingProxyType(stacks),
        )
        within = f"within {_seconds(self._shutdown_timeout)}"
        for name, stack in stacks.items():
            message = f"process {name!r} did not finish {within}; it is stuck at:\n{stack.rstrip()}"
            self._log(logging.ERROR, message, process_name=name, stack=stack)
        unfinished = ", ".join(map(repr, stacks))
        message = f"{_plural(len(stacks), 'process')} did not finish {within}: {unfinished}"
        if not stacks:
            message = f"{'all ' * (len(names) > 1)}{_plural(len(names), 'process')} finished in "
            message += _seconds(report.duration)
        level = logging.WARNING if stacks else logging.INFO
        self._log(level, message, number_of_unfinished_processes=len(stacks))
        with self._lock:
            self._phase, self._report = _Phase.STOPPED, report
        self._emit(ShutdownFinished(report))
        return report

    def _begin_shutdown(
        self, cause: ShutdownCause, reason: str | None = None, signal_number: int | None = None,
        proc: _Process | None = None, error: BaseException | None = None,
    ) -> _Shutdown | None:
        """Begin the shutdown, if it is the first: from now on no run starts, the processes
        are told (see _tell) and the waiting thread is woken. Without a ``reason``, the
        caller gives it later to ``describe()``: describing may run user code."""
        now, name = time.monotonic(), None if proc is None else proc.name
        shutdown = _Shutdown(cause, now, now + self._shutdown_timeout, name, signal_number, error)
        if reason is not None:  # described before it is claimed: nothing can interrupt that
            shutdown.describe(reason)
        if self._claims.setdefault("shutdown", shutdown) is not shutdown:
            return None
        with self._lock:  # (the claim is new: the phase is not STOPPED)
            self._phase = _Phase.SHUTTING_DOWN
            procs, shutdown.running = list(self._processes.values()), self._running
        self._tell(shutdown, procs)
        self._wakeups.put(None)
        self._watchdog_wakeup.set()
        return shutdown

    def _tell(self, shutdown: _Shutdown, procs: list[_Process]) -> None:
        """Tell every process to finish: at once those not running their function and the
        first few that are (the last registered first), the others in turn on a helper
        thread (started once: this runs again on the waiting thread)."""
        in_turn: list[_Process] = []
        for proc in procs:  # (after the shutdown began, no process starts running again)
            if proc.state is _RUNNING or proc.state is _STALLED:
                in_turn.append(proc)
            else:
                proc.tell()
        window = _FIRST_WAVE if self._shutdown_order == "parallel" else 1
        first, in_turn, pacer = in_turn[-window:], in_turn[:-window], None
        with self._lock:  # (a pacer made but not started was interrupted: made again)
            if in_turn and (shutdown.pacer is None or shutdown.pacer.ident is None):
                shutdown.pacer = pacer = threading.Thread(
                    target=self._tell_in_turn, args=(shutdown, in_turn, first, window),
                    name="supervisor-shutdown", daemon=True)
                with contextlib.suppress(RuntimeError):  # no thread to spare: all told at once
                    pacer.start()
        for proc in first + (in_turn if pacer is not None and pacer.ident is None else []):
            proc.tell()  # (the first wave after the helper starts: the other way is slower)

    def _tell_in_turn(self, shutdown: _Shutdown, in_turn: list[_Process], told: list[_Process],
                      window: int) -> None:
        """Tell processes in turn, the last registered first, ``window`` at a time: the next
        as one returns, and in parallel order twice as many each millisecond in which none
        did (in reverse order, one at a time); all the rest at the deadline or when the
        waiting thread stops waiting. Waking thousands of threads at once would make them
        fight over the interpreter: a paced shutdown of fast processes is faster."""
        widens, quiet_since = self._shutdown_order == "parallel", self._clock()
        while True:
            self._returned.clear()  # (before the look: no return is missed)
            now, before = self._clock(), len(told)
            told = [proc for proc in told if proc.state not in _FINAL]  # not returned yet
            if len(told) < before:
                quiet_since = now
            elif widens and now - quiet_since >= 0.001:
                window, quiet_since = window * 2, now
            late = time.monotonic() >= shutdown.deadline or shutdown.hurried
            while in_turn and (len(told) < window or late):
                if (proc := in_turn.pop()).state not in _FINAL:  # (else it returned: no wake-up)
                    told.append(proc)
                    proc.tell()
            if not in_turn:
                return
            tick = 0.001 if widens else _MAX_WAIT
            self._returned.wait(max(0.0, min(shutdown.deadline - time.monotonic(), tick)))

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Route SIGINT and SIGTERM to the waiting thread; restore the old handlers after.

        Our handlers go in first and come out last, and they only queue the signal, so
        no KeyboardInterrupt can cut the swap short. A signal delivered to another thread
        runs no Python handler until the main thread wakes up, so a relay thread wakes
        it from the wake-up fd. The caller has checked that this is the main thread.
        """
        previous: dict[int, Callable[[int, types.FrameType | None], object] | int | None] = {}
        reader, writer = socket.socketpair()
        relay = threading.Thread(target=self._relay, args=(reader,), name="supervisor-signals",
                                 daemon=True)
        previous_fd = None
        try:
            for signum in _SHUTDOWN_SIGNALS:
                previous[signum] = signal.signal(signum, lambda n, _: self._wakeups.put(n))
            writer.setblocking(False)
            relay.start()
            previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            yield
        finally:
            if previous_fd is not None:
                signal.set_wakeup_fd(previous_fd)
            writer.close()  # the relay reads the end of the stream and returns
            if relay.ident is not None:
                relay.join()
            reader.close()
            for number, handler in reversed(previous.items()):  # SIGINT last: it may raise
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _relay(self, reader: socket.socket) -> None:
        while reader.recv(64):
            self._wakeups.put(None)

    # -- run-time changes and status ------------------------------------------

    def remove(self, name: str, timeout: float | None = None) -> bool:
        """Stop one process and wait up to ``timeout`` seconds (None: no limit) for it.

        Sets that process's own finish signal. It is not restarted, and removing a fatal
        process does not shut the supervisor down. Returns whether it returned in time;
        once it has, it is forgotten (no longer in :meth:`status` or the report) and its
        name may be registered again. Called by the process itself,
        it cannot wait and returns False. Raises :class:`UnknownProcessError` for a name
        that is not registered.
        """
        if not isinstance(name, str):
            raise TypeError(f"process name must be a str, got {_describe(name)}")
        if timeout is not None:
            _check_number("Supervisor.remove.timeout", timeout)
        with self._lock:
            if (proc := self._processes.get(name)) is None:
                raise UnknownProcessError(f"no process named {name!r} is registered")
            proc.removing = True
            if proc.thread is None or proc.state in _FINAL:
                self._forget(proc)
            thread = proc.thread
        proc.tell()
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(timeout)
        return not thread.is_alive()

    def status(self) -> Mapping[str, ProcessStatus]:
        """A consistent snapshot of every registered process, taken under the lock."""
        with self._lock:  # a process's status is built again only once it has changed
            rows = [kept[1] if (kept := p.shown) is not None and kept[0] == p.changes else
                    (p, p.changes, p.state, p.attempt, p.recovered_num, p.restarts, p.last_error,
                     p.since, p.thread) for p in self._processes.values()]
        # repr() of an error may run user code, so it runs outside the lock.
        shown = [row if isinstance(row, ProcessStatus) else row[0].show(*row[1:]) for row in rows]
        return {status.name: status for status in shown}

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

        def run_child_supervisor(finish_signal: threading.Event, process_name: str,
                                 terminate_channel: TerminateChannel) -> Exception | None:
            if not isinstance(finish_signal, _FinishSignal):
                raise TypeError("as_process() must be run by a Supervisor (its finish signal)")
            self._reset_for_rerun()
            finish_signal.on_set = self.shutdown
            try:
                if finish_signal.is_set():
                    self.shutdown()
                try:
                    self.start()
                except BaseException:  # a thread refused: stop the processes that did start
                    self.shutdown()
                    self.wait_on_shutdown_signal(handle_signals=False)
                    raise
                report = self.wait_on_shutdown_signal(handle_signals=False)
            finally:
                finish_signal.on_set = None
            return None if report.cause is ShutdownCause.REQUEST else SupervisorFailed(report)

        return run_child_supervisor

    def _reset_for_rerun(self) -> None:
        with self._lock:
            if self._phase is not _Phase.STOPPED:
                if self._phase is not _Phase.NOT_STARTED or self._claims:
                    raise RuntimeError(f"{self!r} is already running")
                return
            # A thread cannot be killed: never run a second copy beside one that still runs.
            if stuck := [name for name, p in self._processes.items() if p.state not in _FINAL]:
                raise RuntimeError(f"{self!r} cannot start afresh: {stuck} have not returned")
            now = self._clock()
            self._processes = {name: _Process(name, p.function, p.options, now)
                               for name, p in self._processes.items()}
            self._phase, self._report, self._running = _Phase.NOT_STARTED, None, 0
            self._claims, self._wakeups = {}, queue.SimpleQueue()
            self._restart_times.clear()

    # -- the supervision loop (runs on each process's thread) ---------------------

    def _supervise(self, proc: _Process) -> None:
        _current.process, _current.supervisor = proc, self
        try:
            self._loop(proc)
        except BaseException as exc:  # a failure of supervision itself: never a silent end
            message = f"supervision of process {proc.name!r} failed"
            self._log(logging.CRITICAL, message, exc_info=exc, process_name=proc.name)
            self._end(proc, _End.GAVE_UP, exc)

    def _loop(self, proc: _Process) -> None:
        """Run the process again and again, as its options say, until it ends for good."""
        name, options, function, channel = proc.name, proc.options, proc.function, self._channel
        hook, logger, lock, clock = self._on_event, self._logger, self._lock, self._clock
        attempt = recovered = waits = 0  # the history that the restart policy reads
        run = None  # (attempt, start, finish signal) of a run the step before started
        while True:
            # 1. Start unless stopping (after a group restart, once the group may run again).
            if run is None and (run := self._start(proc, attempt)) is None:
                return self._end(proc, _End.STOPPED, None)
            (attempt, began, finish_signal), run = run, None
            # 2. Run.
            error: BaseException | None
            try:
                error, raised = function(finish_signal, name, channel), False
            except BaseException as exc:  # a crash, whatever it is: never a silent end
                error, raised = exc, True
            if not (raised or error is None or isinstance(error, Exception)):
                error, raised = _returned_a_bug(name, error), True
            # 3. Sort the outcome and ask the policy, in one locked step with the state.
            with lock:
                if proc.group is not None:  # stopped for a group restart: not an end, no failure
                    attempt -= 1  # nor an attempt
                    continue
                if error is None or isinstance(error, _LAST_WORDS):
                    end: _End | None = _End.RETURNED
                else:
                    draw, now, failed = self._random() if options.jitter else 0.0, clock(), attempt
                    state, delay, attempt, recovered, waits = _restart_policy(
                        options, attempt, recovered, waits, now - began, raised, draw)
                    end = self._decide(proc, state, recovered, error, now)
                    if (end is None and delay == 0 and proc.leads is None
                            and not logger.isEnabledFor(logging.ERROR)):  # the fast path:
                        run = proc.begin_run(attempt, now), now, finish_signal  # in this step
            if run is not None and hook is None:
                continue
            if end is not _End.RETURNED and error is not None:
                self._failed(proc, failed, error, raised, None if end else delay, started=bool(run))
            if end is not None:
                return self._end(proc, end, error, raised)
            # 4. Wait on the finish signal, and for the processes restarting with this one.
            if proc.leads is not None:
                self._restart_group(proc, delay)
            elif delay > 0:
                finish_signal.wait(delay)

    def _start(self, proc: _Process, attempt: int) -> tuple[int, float, threading.Event] | None:
        """A run begins, unless the process must stop (then None); after a group restart,
        once its group may run again. Returns the run's attempt, start and finish signal."""
        while True:  # read with the stopping check: a group restart sets the finish signal
            with self._lock:
                if (group := proc.group) is None:
                    if self._stopping(proc):
                        return None
                    attempt = proc.begin_run(attempt, began := self._clock())
                    finish_signal = proc.finish_signal
                    break
            if not self._rejoin(proc, group):
                return None
        if self._logger.isEnabledFor(logging.INFO):
            count = f"attempt {attempt} of {proc.options.retry_count}"
            message = f"process {proc.name!r} started ({count})"
            self._log(logging.INFO, message, process_name=proc.name, attempt=attempt)
        if self._on_event is not None:
            self._emit(proc.started())
        return attempt, began, finish_signal

    def _failed(self, proc: _Process, attempt: int, error: BaseException, raised: bool,
                delay: float | None, *, started: bool) -> None:
        """A run failed: the event, and, when it runs again after ``delay``, the log line
        and the wait's event (an end says the rest), and the next run's, if it ``started``."""
        name, hook = proc.name, self._on_event
        if hook is not None:
            self._emit(ProcessFailed(name, attempt, error, raised))
        if delay is not None and self._logger.isEnabledFor(logging.ERROR):
            options, text, wait = proc.options, _describe(error), _seconds(delay)
            if raised:
                count = f"recovery {proc.recovered_num} of {options.recover_count}"
                message = f"process {name!r} crashed ({count}): {text}; restarting in {wait}"
            else:
                count = f"attempt {attempt} of {options.retry_count}"
                message = f"process {name!r} failed ({count}): {text}; retrying in {wait}"
            self._log(logging.ERROR, message, exc_info=error if raised else None,
                      process_name=name, attempt=attempt, error=error, interval=delay)
        if hook is not None and delay is not None:
            self._emit(proc.waiting(delay, "recover" if raised else "retry"))
        if hook is not None and started:
            self._emit(proc.started())

    def _forget(self, proc: _Process) -> None:
        """Under the lock: a removed process that has returned is forgotten (its name may be
        registered again), so that register and remove cycles hold no memory."""
        proc.enter(ProcessLifecycle.REMOVED, self._clock())
        del self._processes[proc.name]

    def _stopping(self, proc: _Process) -> bool:
        return self._phase is not _ACCEPTING or proc.removing or proc.finish_signal.is_set()

    def _decide(self, proc: _Process, state: ProcessLifecycle, recovered: int,
                error: BaseException, now: float) -> _End | None:
        """Under the lock: how a failed process ends, or None if it runs again (its
        state and counters are then set, and its group restart is planned)."""
        if self._phase is not _ACCEPTING or proc.removing or proc.finish_signal.is_set():
            return _End.STOPPED  # (_stopping(), inlined: the restart path)
        proc.recovered_num, proc.last_error, proc.changes = recovered, error, proc.changes + 1
        if state is _GAVE_UP:
            return _End.GAVE_UP
        if self._max_restarts is not None:
            window = self._restart_times
            while window and window[0] <= now - self._max_seconds:
                window.popleft()
            if len(window) >= self._max_restarts:
                return _End.RESTART_LIMIT
            window.append(now)
        proc.state, proc.since = state, now  # (in the same locked step as the change above)
        if self._strategy == "one_for_one":
            return None
        names = list(self._processes)
        if self._strategy == "rest_for_one":
            names = names[names.index(proc.name) + 1 :]
        members = [p for p in map(self._processes.__getitem__, names) if p is not proc
                   and p.group is None and not p.removing and p.state in _RESTARTABLE]
        if members:
            proc.leads = _Group(members, time.monotonic() + self._shutdown_timeout)
            for member in members:
                member.group, member.resume = proc.leads, threading.Event()
                member.enter(ProcessLifecycle.RESTARTING, now)
        return None

    def _restart_group(self, proc: _Process, delay: float) -> None:
        """A group restart, on the failed process's thread: stop the group, wait for it
        to return (up to ``shutdown_timeout``) and for this process's own wait, then let
        the group run again."""
        group, proc.leads = proc.leads, None
        assert group is not None
        for member in group.members:
            member.finish_signal.set()
        names = tuple(m.name for m in group.members)
        message = f"process {proc.name!r} failed: restarting {', '.join(map(repr, names))} with it"
        self._log(logging.WARNING, message, process_name=proc.name)
        self._emit(GroupRestart(proc.name, names))
        proc.finish_signal.wait(delay)
        if self._phase is _Phase.RUNNING:
            group.returned.wait(max(0.0, group.deadline - time.monotonic()))
        with self._lock:
            late = [m for m in group.members if m in group.pending and m.state not in _FINAL]
            for member in group.members:
                member.group = None
        if late:  # the shutdown first: no member may start again
            within = f"within {_seconds(self._shutdown_timeout)} for a group restart"
            reason = f"process {late[0].name!r} did not stop {within} (after {proc.name!r} failed)"
            self._begin_shutdown(ShutdownCause.FATAL_PROCESS, reason, proc=late[0])
        for member in group.members:
            member.resume.set()

    def _rejoin(self, proc: _Process, group: _Group) -> bool:
        """A process stopped for a group restart waits until its group may run again,
        then gets a fresh finish signal; False if it must stop instead."""
        with self._lock:
            group.pending.discard(proc)
            if not group.pending:
                group.returned.set()
            resume = proc.resume
        resume.wait()
        with self._lock:
            if self._phase is not _Phase.RUNNING or proc.removing:
                return False
            proc.finish_signal = _FinishSignal()
            return True

    def _end(self, proc: _Process, how: _End, error: BaseException | None, raised: bool = False
             ) -> None:
        """The one way out: ``proc`` ends for good. Its final state is set in the same
        locked step that counts it out; the shutdown it calls for begins next; only then
        does it log and emit its event, which may run slow user code."""
        with self._lock:
            if proc.state in _FINAL:
                return
            if self._stopping(proc):  # an end during a shutdown or removal is graceful
                how = _End.STOPPED
            state = ProcessLifecycle.FINISHED if how in (_End.STOPPED, _End.RETURNED) else _GAVE_UP
            if error is not None:
                proc.last_error = error
            proc.enter(state, self._clock())
            self._running, self._ending = self._running - 1, self._ending + 1
            if proc.removing:  # (it ended STOPPED: never FAILED)
                state = ProcessLifecycle.REMOVED
                self._forget(proc)
        try:
            cause = _shutdown_cause(proc, how, error)
            shutdown = self._begin_shutdown(cause, proc=proc, error=error) if cause else None
            level, message, reason = self._words(proc, how, error, raised)
            self._log(level, message, exc_info=error if raised else None, process_name=proc.name,
                      attempt=proc.attempt, error=error)
            if state is _GAVE_UP and error is not None:
                self._emit(ProcessGaveUp(proc.name, error, cause is not None))
            else:
                self._emit(ProcessStopped(proc.name, state, error))
            if shutdown is not None:
                shutdown.describe(reason)
        finally:  # even if supervision itself failed here: the report must not wait for it
            with self._lock:  # (a shutdown may have begun while this end was told)
                self._ending -= 1
                if self._phase is not _Phase.RUNNING:
                    self._returned.set()  # (the helper telling processes in turn tells the next)
                    if not (self._running or self._ending):
                        self._wakeups.put(None)  # the waiting thread reports

    def _words(self, proc: _Process, how: _End, error: BaseException | None, raised: bool
               ) -> tuple[int, str, str]:
        """The log level, log message and shutdown reason of a process's end."""
        name = proc.name
        if how is _End.STOPPED:
            return logging.INFO, f"process {name!r} stopped", ""
        text = _describe(error)  # (user code: only where the line says the error)
        if how is _End.RESTART_LIMIT:
            limit = f"more than {self._max_restarts} restarts within {_seconds(self._max_seconds)}"
            message = f"process {name!r} failed: {text}; {limit}: shutting down"
            return logging.ERROR, message, f"{limit} (the last: process {name!r} failed)"
        if isinstance(error, TerminateSupervisor):
            message = f"process {name!r} asked to terminate the supervisor: {text}"
            return logging.WARNING, message, message
        if isinstance(error, DoNotRestart):
            return logging.INFO, f"process {name!r} asked not to be restarted: {text}", ""
        fatal = "fatal " if proc.options.is_fatal else ""
        if how is _End.RETURNED and fatal:
            reason = (f"fatal process {name!r} returned None; one-shot work should be registered"
                      " with ProcessOption(is_fatal=False) or return DoNotRestart")
            return logging.ERROR, f"{reason}: shutting down", reason
        if how is _End.RETURNED:
            return logging.INFO, f"process {name!r} finished", ""
        reason = f"{fatal}process {name!r} gave up after {_what_ran_out(proc, raised)}: {text}"
        return logging.ERROR, reason + ("; shutting down" if fatal else ""), reason

    def _announce(self, name: str, /) -> None:
        """``terminate_channel.put(name)``: a process announces its termination."""
        if not isinstance(name, str):
            raise TypeError(f"terminate_channel.put() takes a process name, got {name!r}")
        if name not in self._processes:
            message = f"terminate channel: no process named {name!r}"
            return self._log(logging.WARNING, message, process_name=name)
        self._log(logging.INFO, f"process {name!r} announced its termination", process_name=name)

    # -- the watchdog and systemd ----------------------------------------------------

    def _start_watchdog(self) -> None:
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name="supervisor-watchdog",
                                              daemon=True)
            self._watchdog.start()
        self._watchdog_wakeup.set()  # a new deadline or ping interval: look again

    def _watch(self) -> None:
        """One thread for every process: it marks a run silent for longer than its
        ``heartbeat_timeout`` as stalled, and pings systemd's watchdog while none is.
        It sleeps until the next deadline (no polling), and ends with the shutdown."""
        next_ping = 0.0
        while self._phase is _ACCEPTING or self._phase is _Phase.NOT_STARTED:
            now = time.monotonic()
            wake, healthy = now + _MAX_WAIT, True
            stalled: list[tuple[_Process, float]] = []  # and for how long it has been silent
            with self._lock:
                for proc in self._processes.values():
                    timeout = proc.options.heartbeat_timeout
                    if timeout is None or proc.state in _FINAL or proc.removing:
                        continue
                    if proc.state is _RUNNING and proc.beat + timeout <= now:
                        proc.enter(_STALLED, now)
                        stalled.append((proc, now - proc.beat))
                    healthy = healthy and proc.state is not _STALLED
                    # A deadline, or a look again when a run may have started.
                    wake = min(wake, (proc.beat if proc.state is _RUNNING else now) + timeout)
            for proc, silent in stalled:
                self._stalled(proc, silent)
            if self._ping_every and healthy and now >= next_ping:
                self._notify("WATCHDOG=1")
                next_ping = now + self._ping_every
            if self._ping_every:
                wake = min(wake, next_ping)
            if self._watchdog_wakeup.wait(max(0.0, wake - time.monotonic())):
                self._watchdog_wakeup.clear()

    def _stalled(self, proc: _Process, silent: float) -> None:
        stack = _stacks({proc.name: proc.thread}).get(proc.name, "")
        reason = f"process {proc.name!r} stalled: no heartbeat for {_seconds(silent)}"
        fatal = proc.options.is_fatal
        shutdown = self._begin_shutdown(ShutdownCause.FATAL_PROCESS, proc=proc) if fatal else None
        then = "; shutting down" if shutdown else ""
        self._log(logging.ERROR, f"{reason}{then}; it is stuck at:\n{stack.rstrip()}",
                  process_name=proc.name, stack=stack)
        self._emit(ProcessStalled(proc.name, silent, stack))
        if shutdown is not None:
            shutdown.describe(f"fatal {reason}")

    def _resumed(self, proc: _Process, silent: float) -> None:
        with self._lock:
            if proc.state is not _STALLED:
                return
            proc.enter(_RUNNING, self._clock())
        self._watchdog_wakeup.set()  # it has a deadline again
        message = f"process {proc.name!r} resumed: a heartbeat after {_seconds(silent)}"
        self._log(logging.WARNING, message, process_name=proc.name)

    def _ready(self) -> None:
        """Under systemd, say that the processes run, and start the pings it asks for."""
        address = os.environ.get("NOTIFY_SOCKET", "") if self._systemd_notify else ""
        self._notify_to = "\0" + address[1:] if address.startswith("@") else address
        usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID")
        self._notify(f"READY=1\nSTATUS=running {_plural(len(self._processes), 'process')}")
        if self._notify_to and usec.isdigit() and pid in (None, str(os.getpid())):
            self._ping_every = int(usec) / 2e6
            with self._lock:
                self._start_watchdog()

    def _notify(self, message: str) -> None:
        """Send systemd a notification (sd_notify); a failure is logged once."""
        if not (address := self._notify_to):
            return
        try:
            with (socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
                  contextlib.suppress(BlockingIOError)):
                sock.setblocking(False)  # a full queue drops this message: never block
                sock.sendto(message.encode(), address)
        except OSError as exc:
            self._notify_to = ""
            self._log(logging.WARNING, f"could not notify systemd at {address!r}: {exc}")

    # -- logging and events, which must never disturb supervision ------------------

    def _log(self, level: int, message: str, *, exc_info: BaseException | None = None,
             **fields: object) -> None:
        try:  # (Logger.log checks the level first)
            self._logger.log(level, message, exc_info=exc_info, extra=fields)
        except BaseException:  # a handler or filter that raises must not stop supervision
            with contextlib.suppress(Exception):
                sys.stderr.write(f"supervisor: could not log {message!r}\n{traceback.format_exc()}")

    def _emit(self, event: SupervisorEvent) -> None:
        if (hook := self._on_event) is None:
            return
        try:
            hook(event)
        except BaseException as exc:  # whatever it is, the hook must not stop supervision
            text = _describe(event)
            self._log(logging.ERROR, f"event hook failed on {text}", event=text, exc_info=exc)


# ---------------------------------------------------------------------------
# Private helpers


class _Phase(enum.Enum):
    NOT_STARTED = "not started"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting down"
    STOPPED = "stopped"


_ACCEPTING = _Phase.RUNNING  # bound once, for the restart path
_FIRST_WAVE = 128  # running processes told at once as a shutdown begins: the first window
_LAST_WORDS: Final = (DoNotRestart, TerminateSupervisor)  # a process returns these to end
# A group restart stops these (a process that has not begun its next run starts afresh).
_RESTARTABLE: Final = frozenset({_RUNNING, _STALLED, _TO_RETRY, _TO_RECOVER})


class _End(enum.Enum):
    """How a process ended for good; :meth:`Supervisor._end` makes the rest of it."""

    STOPPED = "stopped"  # by a shutdown, a removal or its own finish signal
    RETURNED = "returned"  # None, DoNotRestart or TerminateSupervisor
    GAVE_UP = "gave up"
    RESTART_LIMIT = "restart limit"


def _shutdown_cause(proc: _Process, how: _End, error: BaseException | None) -> ShutdownCause | None:
    """The shutdown that a process's end begins, if any."""
    if how is _End.RESTART_LIMIT:
        return ShutdownCause.RESTART_LIMIT
    if how is _End.STOPPED or isinstance(error, DoNotRestart):
        return None
    if isinstance(error, TerminateSupervisor):
        return ShutdownCause.TERMINATE_REQUESTED
    return ShutdownCause.FATAL_PROCESS if proc.options.is_fatal else None


class _FinishSignal(threading.Event):
    """A process's finish signal; ``on_set`` lets a nested supervisor follow it."""

    on_set: Callable[[], None] | None = None

    def set(self) -> None:
        super().set()
        if (callback := self.on_set) is not None:  # (read once: it may be unset meanwhile)
            callback()


class _Process:
    """One registered process. ``name``, ``function`` and ``options`` never change; the
    other fields are guarded by the supervisor's lock (the events are set outside it)."""

    __slots__ = ("attempt", "beat", "changes", "finish_signal", "first_start", "function",
                 "group", "last_error", "last_wait", "leads", "name", "options", "recovered_num",
                 "removing", "restarts", "resume", "shown", "since", "state", "thread")

    def __init__(self, name: str, function: ProcessFunc, options: ProcessOption, now: float):
        self.name, self.function, self.options = name, function, options
        self.finish_signal = _FinishSignal()  # replaced for each run after a group restart
        self.resume = threading.Event()  # set when its group restart lets it run again
        self.thread: threading.Thread | None = None
        self.state, self.since = ProcessLifecycle.REGISTERED, now
        self.attempt = self.recovered_num = self.restarts = 0
        self.beat = now  # the last heartbeat (time.monotonic()), or the start of the run
        self.last_error: BaseException | None = None
        self.removing = False  # remove() was called
        self.group: _Group | None = None  # the group restart it is stopped for
        self.leads: _Group | None = None  # the group restart its failure begins
        self.first_start: ProcessStarted | None = None  # events its thread says again and again
        self.changes = 0  # counts the changes of what status() shows
        self.shown: tuple[int, ProcessStatus] | None = None  # status(), as of a change
        self.last_wait: ProcessWaiting | None = None

    def enter(self, state: ProcessLifecycle, now: float) -> None:
        self.state, self.since, self.changes = state, now, self.changes + 1

    def begin_run(self, attempt: int, now: float) -> int:
        """A run begins, as the next attempt after ``attempt``: every run but the first
        is a restart. Returns the new attempt."""
        self.restarts += self.state is not _REGISTERED
        self.attempt, self.state, self.since = attempt + 1, _RUNNING, now
        self.beat, self.changes = now, self.changes + 1
        return attempt + 1

    def show(  # noqa: PLR0917 (a row of status())
        self, changes: int, state: ProcessLifecycle, attempt: int, recovered: int, restarts: int,
        error: BaseException | None, since: float, thread: threading.Thread | None,
    ) -> ProcessStatus:
        """Its status as of change ``changes``, kept (outside the lock) for status() to reuse."""
        text = None if error is None else _describe(error, 10_000)  # user code: no lock held
        status = ProcessStatus(self.name, state, attempt, recovered, restarts, text, since,
                               None if thread is None else thread.name)
        self.shown = (changes, status)  # (if a race keeps an older one, it is built again)
        return status

    def started(self) -> ProcessStarted:
        """The event of the run that began: a first attempt's is built once."""
        if self.attempt != 1:
            return ProcessStarted(self.name, self.attempt)
        self.first_start = self.first_start or ProcessStarted(self.name, 1)
        return self.first_start

    def waiting(self, delay: float, kind: Literal["retry", "recover"]) -> ProcessWaiting:
        """The event of a wait: the same wait as the last one's is built once."""
        if (event := self.last_wait) is None or event.delay != delay or event.kind != kind:
            event = self.last_wait = ProcessWaiting(self.name, delay, kind)
        return event

    def tell(self) -> None:
        """Ask it to finish: its finish signal, and the end of a group restart's wait."""
        self.finish_signal.set()
        self.resume.set()


class _Group:
    """A group restart: the processes stopped for it, and those not returned yet."""

    def __init__(self, members: list[_Process], deadline: float) -> None:
        self.members, self.pending, self.deadline = members, set(members), deadline
        self.returned = threading.Event()


@dataclasses.dataclass(slots=True)
class _Shutdown:
    """A shutdown under way. Its reason is described by the thread that began it, after
    the processes are told (describing may run user code)."""

    cause: ShutdownCause
    started_at: float
    deadline: float
    process_name: str | None
    signal_number: int | None
    error: BaseException | None
    text: str = ""
    running: int = 0  # processes whose loop had not ended when it began
    pacer: threading.Thread | None = None  # tells the processes in turn (_tell_in_turn)
    hurried: bool = False  # the waiting thread no longer waits: tell the rest at once
    described: threading.Event = dataclasses.field(default_factory=threading.Event)

    def describe(self, reason: str) -> None:
        self.text = reason
        self.described.set()

    def reason(self) -> str:
        """The reason, once described; not waited for past the deadline."""
        if self.described.wait(max(0.0, self.deadline - time.monotonic())):
            return self.text
        return f"{self.cause.value}: process {self.process_name!r} (not described in time)"


def _restart_policy(  # noqa: PLR0917 (the history is positional)
    options: ProcessOption, attempt: int, recovered: int, waits: int, ran_for: float,
    raised: bool, draw: float,
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
        attempt, recovered, waits = 1, 0, 0  # a stable run starts afresh
    if raised and options.recover and recovered < options.recover_count:
        state, base = _TO_RECOVER, options.recover_interval
        attempt, recovered = 0, recovered + 1  # a recovery starts a fresh retry budget
    elif not raised and attempt < options.retry_count:
        state, base = _TO_RETRY, options.retry_interval
    else:
        return _GAVE_UP, 0.0, attempt, recovered, waits
    if options.backoff_factor == 1.0 and not options.jitter and options.max_interval is None:
        return state, base, attempt, recovered, waits + 1  # fixed intervals: no arithmetic
    try:
        delay = base * options.backoff_factor**waits
    except OverflowError:
        delay = math.inf if base else 0.0
    delay *= 1.0 + options.jitter * draw
    cap = _MAX_WAIT if options.max_interval is None else options.max_interval
    return state, min(delay, cap), attempt, recovered, waits + 1


def _returned_a_bug(name: str, result: object) -> TypeError:
    """A run returned neither None nor an exception: a bug, handled as a crash. (The
    result's repr is not used: it may fail or hang.)"""
    kind = type(result).__name__
    return TypeError(f"process {name!r} returned a {kind} object; expected None or an Exception")


def _what_ran_out(proc: _Process, raised: bool) -> str:
    if raised and not proc.options.recover:
        return "a crash (recover=False)"
    return _plural(proc.recovered_num, "recovery") if raised else _plural(proc.attempt, "attempt")


_STACKS_LOCK: Final = threading.Lock()


def _stacks(threads: Mapping[str, threading.Thread | None]) -> dict[str, str]:
    """The stack of each process's function, from its thread, if the function has not
    returned (the thread is not in the supervisor's own code only).

    The frames of a running thread change under the reader, which can crash CPython
    3.11 (cpython#99110): they are copied while no other thread runs (no I/O and a long
    switch interval for those microseconds), and formatted after."""
    with _STACKS_LOCK:  # two at once would restore each other's long interval
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1.0)
        try:
            frames = sys._current_frames()
            copies = {name: traceback.StackSummary.extract(traceback.walk_stack(frame),
                                                           lookup_lines=False)
                      for name, thread in threads.items()
                      if thread is not None and (frame := frames.get(thread.ident or 0))}
        finally:
            sys.setswitchinterval(interval)
    stacks = {}
    for name, summary in copies.items():
        entries = list(reversed(summary))  # the outermost call first
        for start, entry in enumerate(entries[:-1]):  # (a function runs below _loop)
            if entry.name == "_loop" and entry.filename == __file__:
                # The calling line is "" when the source cannot be read; else it names the
                # function, or the function has returned (the process is ending).
                if not entry.line or "function(" in entry.line:
                    stacks[name] = "".join(traceback.format_list(entries[start + 1 :]))
                break
    return stacks


def _describe(value: object, limit: int = 200) -> str:
    """``repr(value)``, at most ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except BaseException:  # user code: an error must stay reportable whatever its repr does
        text = f"<{type(value).__name__} object (repr() failed)>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    try:
        signature = inspect.signature(process)
    except (TypeError, ValueError):  # no readable signature (some builtins): accepted
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise TypeError(f"process {name!r} must accept three positional arguments (finish_signal,"
                        f" process_name, terminate_channel), but {_describe(process)} takes "
                        f"{signature}") from None


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


def _check_number(field: str, value: object, low: float = 0.0, high: float = _MAX_WAIT) -> float:
    """``value`` as a finite float from ``low`` to ``high``; a duration by default (no
    wait can be longer than ``threading.TIMEOUT_MAX``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be an int or a float, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not (low <= number <= high and math.isfinite(number)):
        top = {_MAX_WAIT: "threading.TIMEOUT_MAX", math.inf: "any"}.get(high, f"{high:g}")
        span = f"above 0, up to {top}" if low == _ABOVE_0 else f"from {low:g} to {top}"
        raise ValueError(f"{field} must be a finite number {span}, got {_describe(value, 40)}")
    return number
