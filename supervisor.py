# supervisor.py - an in-process supervisor for long-running work on threads.
# Copyright (c) 2026 the supervisor.py authors. MIT License: use, copy, modify and
# distribute freely, keeping this notice; provided "as is", without warranty of any kind.
# Project: https://pypi.org/project/supervisor-py/  (copy this one file into your tree)
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
- return an exception: an error; the process is retried (``retry_count``);
- raise: a crash ("panic"); the process is recovered (``recover_count``).

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

import contextlib
import dataclasses
import enum
import logging
import math
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
from typing import Final, Literal, Protocol, TypeAlias

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
    "ProcessFailed",
    "ProcessFunc",
    "ProcessGaveUp",
    "ProcessLifecycle",
    "ProcessOption",
    "ProcessStarted",
    "ProcessStatus",
    "ProcessStopped",
    "ProcessWaiting",
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
]

__version__ = "1.0.0"

# ---------------------------------------------------------------------------
# Constants (the Go package's, durations in float seconds)

PROCESS_RETRY_COUNT: Final = 3
PROCESS_RETRY_INTERVAL: Final = 3.0
PROCESS_RECOVER_COUNT: Final = 10
PROCESS_RECOVER_INTERVAL: Final = 2.0
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Final = 5.0
LOG_NS_SUPERVISOR: Final = "supervisor"

EXIT_OK: Final = 0
"""Exit code: a signal or a request stopped the supervisor and every process finished."""
EXIT_FATAL: Final = 1
"""Exit code: a fatal process ended, or a process raised/returned TerminateSupervisor."""
EXIT_UNFINISHED: Final = 2
"""Exit code: a signal or a request stopped the supervisor, but a process did not finish."""

_SHUTDOWN_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_SignalHandler: TypeAlias = "Callable[[int, types.FrameType | None], object] | int | None"

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
    :attr:`ShutdownCause.TERMINATE_REQUESTED` and its ``exit_code`` is :data:`EXIT_FATAL`.
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


ShutdownOrder: TypeAlias = Literal["parallel", "reverse"]
"""``"parallel"``: every process gets its finish signal at once. ``"reverse"``: in
reverse registration order, each after every later process has returned (or the
shutdown timeout has run out)."""

_SHUTDOWN_ORDERS: Final = ("parallel", "reverse")

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
    non-negative); a bad field raises ``TypeError`` or ``ValueError`` naming it.

    - ``recover``: run the process again after it raises.
    - ``recover_interval``: wait before a recovery.
    - ``recover_count``: how many recoveries in all (>= 0); each starts a fresh retry
      budget, so at most ``(recover_count + 1) * retry_count`` runs.
    - ``retry_count``: attempts in one retry budget (>= 1), the first included.
    - ``retry_interval``: wait between two attempts (none after the last).
    - ``is_fatal``: shut the supervisor down when this process ends for good outside a
      shutdown (returns None, or gives up).
    - ``backoff_factor``: each consecutive wait is this many times the previous one
      (>= 1; 1.0 keeps fixed intervals).
    - ``max_interval``: a cap on every wait (None: no cap; not below either interval).
    - ``jitter``: each wait is lengthened by a random fraction, up to this much (0 to 1),
      before the cap.
    - ``reset_after``: a run that lasted at least this long before it failed starts over
      with fresh retry and recover counters and a fresh backoff (None: never).
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

    def __post_init__(self) -> None:
        _check_bool("recover", self.recover)
        _check_bool("is_fatal", self.is_fatal)
        _check_count("recover_count", self.recover_count, minimum=0)
        _check_count("retry_count", self.retry_count, minimum=1)
        _check_duration("recover_interval", self.recover_interval)
        _check_duration("retry_interval", self.retry_interval)
        if _check_number("backoff_factor", self.backoff_factor) < 1.0:
            raise ValueError(
                f"ProcessOption.backoff_factor must be >= 1, got {self.backoff_factor!r}"
            )
        if not 0.0 <= _check_number("jitter", self.jitter) <= 1.0:
            raise ValueError(f"ProcessOption.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max_interval is not None:
            floor = max(self.retry_interval, self.recover_interval)
            if _check_duration("max_interval", self.max_interval) < floor:
                raise ValueError(
                    f"ProcessOption.max_interval must not be below retry_interval or "
                    f"recover_interval ({floor!r}), got {self.max_interval!r}"
                )
        if self.reset_after is not None:
            _check_duration("reset_after", self.reset_after)


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
class ShutdownStarted:
    """A shutdown began; ``reason`` is the report's."""

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
    | ShutdownStarted
    | ShutdownFinished
)


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessStatus:
    """A snapshot of one process (Go's ``ProcessState``, with more in it).

    ``since`` is the ``time.monotonic()`` at which the process entered ``state``;
    ``last_error`` is the repr of the last exception it returned or raised.
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
    - ``unfinished``: every process still running when the wait ended; ``stacks`` maps
      each to its thread's current stack.
    - ``duration``: seconds from the start of the shutdown to this report.
    - ``exit_code``: :data:`EXIT_FATAL` (1) if a fatal process or TerminateSupervisor
      caused the shutdown, else :data:`EXIT_UNFINISHED` (2) if a process did not finish,
      else :data:`EXIT_OK` (0).
    """

    reason: str
    cause: ShutdownCause
    finished: tuple[str, ...]
    unfinished: tuple[str, ...]
    duration: float
    exit_code: int
    process_name: str | None = None
    signal_number: int | None = None
    error: BaseException | None = None
    stacks: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)


# ---------------------------------------------------------------------------
# The supervisor


class Supervisor:
    """Runs registered processes on threads, restarts them, and stops them gracefully.

    ``shutdown_timeout`` (seconds; 0 means the default, as in Go) bounds the graceful
    shutdown. ``logger`` gets a child named ``"supervisor"``; by default the logger is
    ``logging.getLogger("supervisor")``. ``on_event`` receives every
    :data:`SupervisorEvent`; it is called outside the lock, and an exception in it is
    logged and ignored. ``shutdown_order`` is ``"parallel"`` or ``"reverse"``.

    All methods are thread-safe. :meth:`wait_on_shutdown_signal` is meant for the main
    thread, which owns signal handling.
    """

    def __init__(
        self,
        shutdown_timeout: float = DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        logger: logging.Logger | None = None,
        *,
        on_event: Callable[[SupervisorEvent], object] | None = None,
        shutdown_order: ShutdownOrder = "parallel",
    ) -> None:
        if _check_duration("shutdown_timeout", shutdown_timeout, owner="Supervisor") == 0:
            shutdown_timeout = DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"Supervisor.logger must be a logging.Logger or None, got {logger!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"Supervisor.on_event must be callable or None, got {on_event!r}")
        if shutdown_order not in _SHUTDOWN_ORDERS:
            raise ValueError(
                f"Supervisor.shutdown_order must be 'parallel' or 'reverse', got {shutdown_order!r}"
            )
        self._shutdown_timeout = float(shutdown_timeout)
        self._logger = (
            logging.getLogger(LOG_NS_SUPERVISOR)
            if logger is None
            else logger.getChild(LOG_NS_SUPERVISOR)
        )
        self._on_event = on_event
        self._shutdown_order = shutdown_order
        self._random = random.Random()
        self._terminate_channel = _TerminateChannel(self)
        # Wakes the thread in wait_on_shutdown_signal: a signal number (from the signal
        # relay thread), or None to say "look again" (a shutdown began, or the last
        # running process returned).
        self._wakeups: queue.SimpleQueue[int | None] = queue.SimpleQueue()

        # _start_lock is held from launching a thread (under _lock) until it has started,
        # so that nobody joins a thread that is not started yet. Taken before _lock.
        self._start_lock = threading.Lock()
        # _lock guards every field below and every _Process record's mutable fields. It is
        # reentrant so that shutdown() works from a signal handler, which runs on the main
        # thread between two bytecodes, perhaps while that thread holds the lock.
        self._lock = threading.RLock()
        self._processes: dict[str, _Process] = {}  # in registration order
        self._started = False
        self._running = 0  # threads of current records that have not returned yet
        self._shutdown: _Shutdown | None = None  # set once, when the shutdown begins
        self._report: ShutdownReport | None = None
        self._waiting = False  # a thread is inside wait_on_shutdown_signal

    def __repr__(self) -> str:
        # Reads without the lock: error messages raised under the lock use repr().
        if self._report is not None:
            phase = "stopped"
        elif self._shutdown is not None:
            phase = "shutting down"
        else:
            phase = "running" if self._started else "not started"
        return f"<Supervisor {phase}, {len(self._processes)} processes>"

    # -- registration and start ---------------------------------------------

    def register(
        self, name: str, process: ProcessFunc, options: ProcessOption | None = None
    ) -> None:
        """Add a process; once :meth:`start` has run, it starts at once.

        Raises ``TypeError`` or ``ValueError`` for a name that is not a non-empty str,
        a name already registered (a removed process's name may be reused once it has
        returned), a process that is not callable, or options that are not a
        :class:`ProcessOption`; ``RuntimeError`` once the shutdown has begun.
        """
        if not isinstance(name, str):
            raise TypeError(f"process name must be a str, got {name!r}")
        if not name.strip():
            raise ValueError(f"process name must not be empty, got {name!r}")
        if not callable(process):
            raise TypeError(f"process {name!r} must be callable, got {process!r}")
        if options is None:
            options = ProcessOption()
        elif not isinstance(options, ProcessOption):
            raise TypeError(f"options for {name!r} must be a ProcessOption, got {options!r}")
        record = _Process(name, process, options)
        with self._start_lock:
            with self._lock:
                if self._shutdown is not None:
                    raise RuntimeError(f"{self!r} is shutting down; cannot register {name!r}")
                existing = self._processes.get(name)
                if existing is not None:
                    if existing.state is not ProcessLifecycle.REMOVED or existing.running:
                        raise ValueError(f"process name {name!r} is already registered")
                    del self._processes[name]  # a re-registered name goes last in the order
                self._processes[name] = record
                if self._started:
                    self._launch_locked(record)
            self._start_threads([record])

    def start(self) -> None:
        """Start a thread for each registered process.

        Raises ``RuntimeError`` if called twice. After a shutdown has begun it starts
        nothing (a warning is logged), so a ``start()`` racing ``shutdown()`` is safe.
        """
        with self._start_lock:
            with self._lock:
                if self._started:
                    raise RuntimeError(f"{self!r} was already started")
                self._started = True
                stopping = self._shutdown is not None
                records = [] if stopping else list(self._processes.values())
                for record in records:
                    self._launch_locked(record)
            self._start_threads(records)
        if stopping:
            self._log(logging.WARNING, "supervisor is shutting down; no process started")

    def _start_threads(self, records: list[_Process]) -> None:
        """Start the launched threads; if the OS refuses one, that process and the ones
        after it never run: they fail, so that nothing waits for them."""
        for index, record in enumerate(records):
            try:
                record.start_thread()
            except BaseException as exc:
                for unstarted in records[index:]:
                    if unstarted.running:  # launched, so not a removed process
                        with self._lock:
                            unstarted.last_error = exc
                            unstarted.enter(ProcessLifecycle.FAILED)
                        self._process_returned(unstarted)
                raise

    def _launch_locked(self, record: _Process) -> None:
        if record.state is ProcessLifecycle.REMOVED:
            return
        record.thread = threading.Thread(
            target=self._supervise, args=(record,), name=record.name, daemon=True
        )
        record.running = True
        self._running += 1

    # -- shutdown -----------------------------------------------------------

    def shutdown(self) -> None:
        """Begin a graceful shutdown, as a signal does; never blocks.

        Safe from any thread, a process included, and idempotent: only the first call
        (or signal, or fatal process) counts. The report comes from
        :meth:`wait_on_shutdown_signal`.
        """
        self._begin_shutdown(ShutdownCause.REQUEST, "shutdown() was called")

    def wait_on_shutdown_signal(self, *, handle_signals: bool = True) -> ShutdownReport:
        """Block until a shutdown, carry it out gracefully, and return its report.

        A shutdown begins with SIGINT or SIGTERM (while this method runs, its handlers
        replace the previous ones, which are restored when it returns), with
        :meth:`shutdown`, or with the end of a fatal process. Every process's finish
        signal is then set, and this method returns as soon as every process has
        returned, or after ``shutdown_timeout`` at the latest; a second signal during
        the shutdown stops the wait at once.

        Signal handlers can only be installed from the main thread: elsewhere this
        raises ``RuntimeError`` unless ``handle_signals=False``. It also raises
        ``RuntimeError`` if the supervisor was never started (nor shut down), or if
        another thread is already waiting. Once the shutdown is over, every call
        returns the same report.
        """
        if handle_signals:
            _require_main_thread("wait_on_shutdown_signal()")
        with self._lock:
            if self._report is not None:
                return self._report
            if not self._started and self._shutdown is None:
                raise RuntimeError(f"{self!r}: call start() before wait_on_shutdown_signal()")
            if self._waiting:
                raise RuntimeError(f"{self!r}: another thread is already waiting on it")
            self._waiting = True
        try:
            with self._signal_handlers(handle_signals):
                return self._wait_for_shutdown()
        finally:
            with self._lock:
                self._waiting = False

    def run(self, *, handle_signals: bool = True) -> ShutdownReport:
        """:meth:`start`, then :meth:`wait_on_shutdown_signal`, and return the report.

        The SIGINT and SIGTERM handlers are installed before any process starts, so no
        signal can arrive between the two calls while the default handlers are in place.
        """
        if handle_signals:
            _require_main_thread("run()")
        with self._signal_handlers(handle_signals):
            self.start()
            return self.wait_on_shutdown_signal(handle_signals=False)

    @contextlib.contextmanager
    def _signal_handlers(self, install: bool) -> Iterator[None]:
        """Route SIGINT and SIGTERM to the waiting thread; restore the old handlers after.

        Python runs a signal handler on the main thread only when that thread next runs
        bytecode, which a thread blocked on a lock may never do when the signal went to
        another thread. But Python's C-level handler writes the signal number to the
        wake-up fd from whichever thread gets it, so a relay thread reads it from there.
        The caller has checked that this is the main thread.
        """
        if not install:
            yield
            return
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        relay = threading.Thread(
            target=self._relay_signals, args=(reader,), name="supervisor-signals", daemon=True
        )
        relay.start()
        # The wake-up fd first: a signal before our handlers still reaches the old ones.
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        previous: dict[int, _SignalHandler] = {}
        try:
            for signum in _SHUTDOWN_SIGNALS:
                previous[signum] = signal.signal(signum, _leave_to_relay)
            yield
        finally:
            # Our handlers go last, so that no KeyboardInterrupt from a restored handler
            # can cut this short and leave the wake-up fd on a closed socket.
            signal.set_wakeup_fd(previous_fd)
            writer.close()  # the relay reads the end of the stream and returns
            relay.join()
            reader.close()
            for number, handler in previous.items():
                signal.signal(number, signal.SIG_DFL if handler is None else handler)

    def _relay_signals(self, reader: socket.socket) -> None:
        while data := reader.recv(64):
            for signum in data:
                if signum in _SHUTDOWN_SIGNALS:
                    self._wakeups.put(signum)

    def _wait_for_shutdown(self) -> ShutdownReport:
        # 1. Wait for a reason to stop: a signal, shutdown(), or a fatal process.
        signals = 0
        while (shutdown := self._current_shutdown()) is None:
            wakeup = self._wakeups.get()
            if wakeup is not None:
                signals += 1
                self._begin_shutdown(
                    ShutdownCause.SIGNAL,
                    f"received signal {signal.Signals(wakeup).name}",
                    signal_number=wakeup,
                )
        # 2. Wait for every process to return, until the deadline or a second signal.
        while not self._all_returned():
            try:
                wakeup = self._wakeups.get(timeout=max(0.0, shutdown.deadline - time.monotonic()))
            except queue.Empty:
                break
            if wakeup is not None:
                signals += 1
                if signals == 1:  # the shutdown had another cause: this signal asks again
                    self._log(
                        logging.INFO,
                        "signal received; the graceful shutdown goes on",
                        signal=signal.Signals(wakeup).name,
                    )
                    continue
                self._log(
                    logging.WARNING,
                    "second signal received; stop waiting for processes",
                    signal=signal.Signals(wakeup).name,
                )
                break
        # 3. Report who finished and where the others are stuck.
        return self._finish_shutdown(shutdown)

    def _current_shutdown(self) -> _Shutdown | None:
        with self._lock:
            return self._shutdown

    def _all_returned(self) -> bool:
        with self._lock:
            return self._running == 0

    def _begin_shutdown(
        self,
        cause: ShutdownCause,
        reason: str,
        *,
        process_name: str | None = None,
        signal_number: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            if self._shutdown is not None:
                return
            records = list(self._processes.values())
            stopper = (
                None
                if self._shutdown_order == "parallel"
                else threading.Thread(
                    target=_stop_in_reverse,
                    args=(records, now + self._shutdown_timeout),
                    name="supervisor-shutdown",
                    daemon=True,
                )
            )
            self._shutdown = _Shutdown(
                cause,
                reason,
                now,
                now + self._shutdown_timeout,
                process_name,
                signal_number,
                error,
                stopper,
            )
            # No run starts from now on (see _stopping_locked), so a process that is not
            # running its function now can be told at once, even in reverse order: that
            # ends its retry or recover wait.
            idle = [r for r in records if r.state is not ProcessLifecycle.RUNNING]
        self._log(logging.INFO, "shutdown all processes gracefully", reason=reason)
        self._log(
            logging.INFO,
            "notify all processes (goroutines) to finish their jobs",
            shutdown_timeout=self._shutdown_timeout,
        )
        if stopper is None:
            for record in records:
                record.finish_signal.set()
        else:
            for record in idle:
                record.finish_signal.set()
            try:
                stopper.start()
            except RuntimeError:  # no thread to spare: tell every process at once
                for record in records:
                    record.finish_signal.set()
        self._wakeups.put(None)
        self._emit(ShutdownStarted(reason, cause))

    def _finish_shutdown(self, shutdown: _Shutdown) -> ShutdownReport:
        with self._lock:
            finished = tuple(r.name for r in self._processes.values() if not r.running)
            stuck = [(r.name, r.thread) for r in self._processes.values() if r.running]
        if not stuck and shutdown.stopper is not None and shutdown.stopper.ident is not None:
            shutdown.stopper.join()  # every process has returned: it is on its way out
        frames = sys._current_frames() if stuck else {}
        stacks = {
            name: "".join(traceback.format_stack(frames[thread.ident]))
            for name, thread in stuck
            if thread is not None and thread.ident in frames
        }
        if shutdown.cause in (ShutdownCause.FATAL_PROCESS, ShutdownCause.TERMINATE_REQUESTED):
            exit_code = EXIT_FATAL
        else:
            exit_code = EXIT_UNFINISHED if stuck else EXIT_OK
        report = ShutdownReport(
            reason=shutdown.reason,
            cause=shutdown.cause,
            finished=finished,
            unfinished=tuple(name for name, _ in stuck),
            duration=time.monotonic() - shutdown.started_at,
            exit_code=exit_code,
            process_name=shutdown.process_name,
            signal_number=shutdown.signal_number,
            error=shutdown.error,
            stacks=types.MappingProxyType(stacks),
        )
        for name, stack in stacks.items():
            self._log(
                logging.ERROR,
                f"process did not finish in time: {name!r}, stuck at\n{stack.rstrip()}",
                process_name=name,
                stack=stack,
            )
        self._log(
            logging.INFO,
            "supervisor terminates its job.",
            number_of_unfinished_processes=len(stuck),
        )
        with self._lock:
            self._report = report  # only the one waiting thread gets here
        self._emit(ShutdownFinished(report))
        return report

    # -- run-time changes and status ------------------------------------------

    def remove(self, name: str, timeout: float | None = None) -> bool:
        """Stop one process and wait up to ``timeout`` seconds (None: no limit) for it.

        Sets that process's own finish signal. It is not restarted, and removing a fatal
        process does not shut the supervisor down. Returns whether it returned in time;
        once it has, its name may be registered again. Called by the process itself,
        it cannot wait and returns False. Raises :class:`UnknownProcessError` for a name
        that is not registered.
        """
        if not isinstance(name, str):
            raise TypeError(f"process name must be a str, got {name!r}")
        if timeout is not None:
            _check_duration("timeout", timeout, owner="Supervisor.remove")
        with self._start_lock, self._lock:
            record = self._processes.get(name)
            if record is None or record.state is ProcessLifecycle.REMOVED:
                raise UnknownProcessError(f"no process named {name!r} is registered")
            record.removing = True
            if not record.running:
                record.enter(ProcessLifecycle.REMOVED)
            thread = record.thread
        record.finish_signal.set()
        if thread is None or not thread.is_alive():
            return True
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def status(self) -> Mapping[str, ProcessStatus]:
        """A consistent snapshot of every registered process, taken under the lock."""
        with self._lock:
            rows = [
                (
                    r.name,
                    r.state,
                    r.attempt,
                    r.recovered_num,
                    r.restarts,
                    r.last_error,
                    r.since,
                    r.thread,
                )
                for r in self._processes.values()
            ]
        # repr() may run user code, so it runs outside the lock.
        return {
            name: ProcessStatus(
                name,
                state,
                attempt,
                recovered,
                restarts,
                None if error is None else _safe_repr(error),
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
        None. When the child shuts itself down (a fatal process, TerminateSupervisor),
        the run returns :class:`SupervisorFailed`, which the parent's policy handles.
        The function must be run by a parent :class:`Supervisor`; the child must not be
        started by other means.
        """

        def run_child_supervisor(
            finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
        ) -> Exception | None:
            if not isinstance(finish_signal, _FinishSignal):
                raise TypeError("as_process() must be run by a Supervisor (its finish signal)")
            self._reset_for_rerun()
            self.start()
            finish_signal.on_set = self.shutdown
            try:
                if finish_signal.is_set():
                    self.shutdown()
                report = self.wait_on_shutdown_signal(handle_signals=False)
            finally:
                finish_signal.on_set = None
            if report.cause is ShutdownCause.REQUEST:
                return None
            return SupervisorFailed(report)

        return run_child_supervisor

    def _reset_for_rerun(self) -> None:
        with self._lock:
            if self._report is None:
                if self._started or self._shutdown is not None:
                    raise RuntimeError(f"{self!r} is already running")
                return
            stuck = [name for name, r in self._processes.items() if r.running]
            if stuck:  # a thread cannot be killed: never run a second copy beside it
                raise RuntimeError(f"{self!r} cannot start afresh: {stuck} have not returned")
            self._processes = {
                name: _Process(name, r.function, r.options)
                for name, r in self._processes.items()
                if r.state is not ProcessLifecycle.REMOVED
            }
            self._started = False
            self._running = 0
            self._shutdown = None
            self._report = None
            self._wakeups = queue.SimpleQueue()

    # -- the supervision loop (runs on each process's thread) ---------------------

    def _supervise(self, record: _Process) -> None:
        try:
            self._run_with_policy(record)
        except BaseException as exc:  # a failure of supervision itself: never a silent end
            self._log(
                logging.CRITICAL, "supervision failed", process_name=record.name, exc_info=exc
            )
            self._give_up(record, exc, "don't try any more to restart the process")
        finally:
            self._process_returned(record)

    def _run_with_policy(self, record: _Process) -> None:
        """Run the process again and again as its options say, until it ends for good."""
        name, options, finish_signal = record.name, record.options, record.finish_signal
        function, channel, lock = record.function, self._terminate_channel, self._lock
        logger, hook = self._logger, self._on_event
        # Enum members and the backoff are looked up once: this loop is the hot path.
        running = ProcessLifecycle.RUNNING
        waiting_to_retry = ProcessLifecycle.WAITING_TO_RETRY
        waiting_to_recover = ProcessLifecycle.WAITING_TO_RECOVER
        fixed_intervals = (
            options.backoff_factor == 1.0 and not options.jitter and options.max_interval is None
        )
        runs = 0
        attempt = 0  # attempts in the current retry budget
        waits = 0  # consecutive waits since the last reset, for the backoff
        while True:
            attempt += 1
            # Checked before and after each run: if ERROR is off, every level this loop
            # logs at is off, and nothing is built for a line that is not logged.
            logging_on = logger.isEnabledFor(logging.ERROR)
            began = time.monotonic()
            with lock:
                # No run starts once a shutdown or a removal has begun.
                if self._stopping_locked(record):
                    break
                record.restarts = runs  # every run but the first is a restart
                record.attempt = attempt
                record.state, record.since = running, began
            runs += 1
            if logging_on:
                self._log(logging.INFO, "execute process", process_name=name, attempt=attempt)
            if hook is not None:
                self._emit(ProcessStarted(name, attempt))
            try:
                result = function(finish_signal, name, channel)
            except BaseException as exc:  # a panic, whatever it is: never a silent end
                error: BaseException = exc
                panic = True
            else:
                if result is None:
                    self._returned_none(record)
                    return
                panic = not isinstance(result, Exception)
                error = (
                    TypeError(
                        f"process {name!r} returned {result!r}; expected None or an Exception"
                    )
                    if panic
                    else result
                )
            if isinstance(error, (DoNotRestart, TerminateSupervisor)):
                self._decided_to_end(record, error)
                return
            logging_on = logger.isEnabledFor(logging.ERROR)  # the run may have been long
            if logging_on:
                if panic:
                    self._log(
                        logging.ERROR,
                        "recover from panic",
                        process_name=name,
                        attempt=attempt,
                        error=error,
                        exc_info=error,
                    )
                else:
                    self._log(
                        logging.ERROR,
                        "failed to execute process",
                        process_name=name,
                        attempt=attempt,
                        error=error,
                    )
            if hook is not None:
                self._emit(ProcessFailed(name, attempt, error, panic))
            # A shutdown or removal under way ends the process below (_give_up, or the
            # check before the wait), before any counter changes.
            # The counters change in the same locked step as the state, so that status()
            # never shows a reset without its outcome. (Only this thread writes them.)
            recovered = record.recovered_num
            if options.reset_after is not None and time.monotonic() - began >= options.reset_after:
                attempt, waits, recovered = 1, 0, 0
            if panic:
                if not options.recover or recovered >= options.recover_count:
                    self._give_up(
                        record, error, "don't try any more to restart the process", recovered
                    )
                    return
                attempt = 0  # a recovery starts a fresh retry budget, as in Go
                recovered += 1
                state, delay = waiting_to_recover, options.recover_interval
            else:
                if attempt >= options.retry_count:
                    self._give_up(record, error, "don't try any more to execute process", recovered)
                    return
                state, delay = waiting_to_retry, options.retry_interval
            if not fixed_intervals:
                delay = _backoff_delay(options, delay, waits, self._random.random)
            waits += 1
            with lock:
                record.last_error = error
                stopping = self._stopping_locked(record)
                if not stopping:
                    record.recovered_num = recovered
                    record.state, record.since = state, time.monotonic()
            if stopping:  # "reverse" order: its turn has not come, but no wait starts now
                self._stop(record, error)
                return
            if hook is not None:
                self._emit(ProcessWaiting(name, delay, "recover" if panic else "retry"))
            if logging_on and not panic:
                self._log(
                    logging.INFO,
                    "wait to retry execute process after sleep interval",
                    process_name=name,
                    interval=delay,
                )
            if delay > 0 and finish_signal.wait(delay):
                break  # (after no wait at all, the check at the top of the loop sees it)
            if logging_on and panic:
                self._log(logging.INFO, "restart the process", process_name=name)
        self._stop(record, None)

    def _decided_to_end(self, record: _Process, error: DoNotRestart | TerminateSupervisor) -> None:
        """The process raised or returned DoNotRestart or TerminateSupervisor."""
        name = record.name
        if isinstance(error, DoNotRestart):
            self._log(logging.INFO, "process asked not to be restarted", process_name=name)
            self._stop(record, error)
            return
        self._log(
            logging.WARNING,
            "process asked to terminate the supervisor",
            process_name=name,
            error=error,
        )
        self._stop(record, error)
        self._begin_shutdown(
            ShutdownCause.TERMINATE_REQUESTED,
            f"process {name!r} asked to terminate the supervisor: {_safe_repr(error)}",
            process_name=name,
            error=error,
        )

    def _returned_none(self, record: _Process) -> None:
        # Go: a long-running process should return only when it receives the shutdown
        # signal, so a return before it has ended the process for good.
        if not self._end_unless_stopping(record, ProcessLifecycle.FINISHED, None):
            self._stop(record, None)
            return
        self._log(logging.INFO, "process terminates with no error", process_name=record.name)
        if self._on_event is not None:
            self._emit(ProcessStopped(record.name, ProcessLifecycle.FINISHED, None))
        if record.options.is_fatal:
            self._fatal(record, f"fatal process {record.name!r} returned", None)

    def _end_unless_stopping(
        self,
        record: _Process,
        state: ProcessLifecycle,
        error: BaseException | None,
        recovered_num: int | None = None,
    ) -> bool:
        """Enter ``state`` and return True, unless a shutdown or removal is under way: an
        end then is graceful (see _stop), never a fatal event."""
        with self._lock:
            if self._stopping_locked(record):
                return False
            if error is not None:
                record.last_error = error
            if recovered_num is not None:
                record.recovered_num = recovered_num
            record.enter(state)
            return True

    def _stopping_locked(self, record: _Process) -> bool:
        return self._shutdown is not None or record.removing or record.finish_signal.is_set()

    def _stop(self, record: _Process, error: BaseException | None) -> None:
        """The process ended for good without giving up (shutdown, removal, DoNotRestart)."""
        with self._lock:
            graceful = self._stopping_locked(record)
            if error is not None:
                record.last_error = error
            record.enter(ProcessLifecycle.REMOVED if record.removing else ProcessLifecycle.FINISHED)
            state = record.state
        if graceful:
            self._log(logging.INFO, "process terminates gracefully", process_name=record.name)
        if self._on_event is not None:
            self._emit(ProcessStopped(record.name, state, error))

    def _give_up(
        self,
        record: _Process,
        error: BaseException,
        message: str,
        recovered_num: int | None = None,
    ) -> None:
        if not self._end_unless_stopping(record, ProcessLifecycle.FAILED, error, recovered_num):
            self._stop(record, error)
            return
        self._log(logging.INFO, message, process_name=record.name)
        fatal = record.options.is_fatal
        if self._on_event is not None:
            self._emit(ProcessGaveUp(record.name, error, fatal))
        if fatal:
            reason = f"fatal process {record.name!r} gave up: {_safe_repr(error)}"
            self._fatal(record, reason, error)

    def _fatal(self, record: _Process, reason: str, error: BaseException | None) -> None:
        self._log(
            logging.ERROR, "can't recover important process. exit..", process_name=record.name
        )
        self._begin_shutdown(
            ShutdownCause.FATAL_PROCESS, reason, process_name=record.name, error=error
        )

    def _process_returned(self, record: _Process) -> None:
        with self._lock:
            record.running = False
            if record.removing:
                record.enter(ProcessLifecycle.REMOVED)
            self._running -= 1
            wake = self._running == 0 and self._shutdown is not None
        if wake:
            self._wakeups.put(None)

    # -- logging and events, which must never disturb supervision ------------------

    def _log(
        self, level: int, message: str, *, exc_info: BaseException | None = None, **fields: object
    ) -> None:
        logger = self._logger
        if not logger.isEnabledFor(level):
            return
        try:
            logger.log(level, message, exc_info=exc_info, extra=fields)
        except BaseException:  # a handler or filter that raises must not stop supervision
            with contextlib.suppress(Exception):
                sys.stderr.write(f"supervisor: could not log {message!r}\n{traceback.format_exc()}")

    def _emit(self, event: SupervisorEvent) -> None:
        hook = self._on_event
        if hook is None:
            return
        try:
            hook(event)
        except BaseException as exc:  # whatever it is, the hook must not stop supervision
            self._log(logging.ERROR, "event hook failed", event=_safe_repr(event), exc_info=exc)


# ---------------------------------------------------------------------------
# Private helpers


class _FinishSignal(threading.Event):
    """A process's finish signal; ``on_set`` lets a nested supervisor follow it."""

    on_set: Callable[[], None] | None = None

    def set(self) -> None:
        super().set()
        callback = self.on_set
        if callback is not None:
            callback()


class _Process:
    """One registered process and its state; mutable fields are guarded by the
    supervisor's lock."""

    __slots__ = (
        "attempt",
        "finish_signal",
        "function",
        "last_error",
        "name",
        "options",
        "recovered_num",
        "removing",
        "restarts",
        "running",
        "since",
        "state",
        "thread",
    )

    def __init__(self, name: str, function: ProcessFunc, options: ProcessOption) -> None:
        self.name = name
        self.function = function
        self.options = options
        self.finish_signal = _FinishSignal()
        self.thread: threading.Thread | None = None
        self.state = ProcessLifecycle.REGISTERED
        self.since = time.monotonic()
        self.attempt = 0
        self.recovered_num = 0  # Go's ProcessState.RecoveredNum
        self.restarts = 0
        self.last_error: BaseException | None = None
        self.running = False  # its thread was created and has not returned
        self.removing = False  # remove() was called

    def enter(self, state: ProcessLifecycle) -> None:
        self.state = state
        self.since = time.monotonic()

    def start_thread(self) -> None:
        if self.thread is not None and self.thread.ident is None:  # launched, not started
            self.thread.start()


@dataclasses.dataclass(frozen=True, slots=True)
class _Shutdown:
    cause: ShutdownCause
    reason: str
    started_at: float
    deadline: float
    process_name: str | None
    signal_number: int | None
    error: BaseException | None
    stopper: threading.Thread | None  # stops processes in reverse order


class _TerminateChannel:
    """The terminate channel handed to processes: a name put on it is logged."""

    __slots__ = ("_supervisor",)

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def put(self, name: str, /) -> None:
        if not isinstance(name, str):
            raise TypeError(f"terminate_channel.put() takes a process name, got {name!r}")
        supervisor = self._supervisor
        with supervisor._lock:
            known = name in supervisor._processes
        if known:
            supervisor._log(logging.INFO, "process announced its termination", process_name=name)
        else:
            supervisor._log(logging.WARNING, "process doesn't exist", process_name=name)


def _stop_in_reverse(records: list[_Process], deadline: float) -> None:
    """Set each finish signal after every later process has returned, or the deadline."""
    for record in reversed(records):
        record.finish_signal.set()
        thread = record.thread
        if thread is not None and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))


def _leave_to_relay(signum: int, frame: types.FrameType | None) -> None:
    """The Python-level handler for SIGINT and SIGTERM while the relay thread reports them."""


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except BaseException:  # user code: an error must stay reportable whatever its repr does
        return f"<{type(value).__name__} object (repr() failed)>"


def _require_main_thread(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{what} must run on the main thread, which alone can install signal handlers;"
            " pass handle_signals=False to call it from another thread"
        )


def _backoff_delay(
    options: ProcessOption, base: float, waits: int, draw: Callable[[], float]
) -> float:
    """The wait before the next run: ``base * backoff_factor ** waits``, lengthened by
    up to ``jitter`` of itself, then capped by ``max_interval``."""
    if base == 0:
        return 0.0
    try:
        delay = base * options.backoff_factor**waits
    except OverflowError:
        delay = math.inf
    if options.jitter:
        delay *= 1.0 + options.jitter * draw()
    cap = threading.TIMEOUT_MAX if options.max_interval is None else options.max_interval
    return min(delay, cap)


def _check_bool(field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"ProcessOption.{field} must be a bool, got {value!r}")


def _check_count(field: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"ProcessOption.{field} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"ProcessOption.{field} must be >= {minimum}, got {value!r}")


def _check_number(field: str, value: object, owner: str = "ProcessOption") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{field} must be an int or a float, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{field} must be finite, got {value!r}")
    return float(value)


def _check_duration(field: str, value: object, owner: str = "ProcessOption") -> float:
    seconds = _check_number(field, value, owner)
    if seconds < 0:
        raise ValueError(f"{owner}.{field} must not be negative, got {value!r}")
    if seconds > threading.TIMEOUT_MAX:  # no wait can be longer (OverflowError)
        raise ValueError(
            f"{owner}.{field} must be at most threading.TIMEOUT_MAX "
            f"({threading.TIMEOUT_MAX:g} s), got {value!r}"
        )
    return seconds
