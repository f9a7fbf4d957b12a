#!/usr/bin/env python3
"""Benchmarks for supervisor.py: the cost of supervision, measured against bare threads.

Usage (from the repository root)::

    python benchmarks/bench_supervisor.py            # full sizes: about two minutes
    python benchmarks/bench_supervisor.py --quick    # small sizes: a few seconds (CI)
    python benchmarks/bench_supervisor.py --figures 3,4   # only some figures

Each figure is measured beside a bare-``threading`` baseline in the same run, and the
table gives the absolute number, the baseline, their ratio and the target. Nothing here
asserts on a timing: the verdict column is information only, and the script exits 0
whatever the figures are (it exits non-zero only if a benchmark itself breaks, e.g. a
thread does not start or a process does not finish).

Standard library only. Logging is disabled (``logging.disable(logging.CRITICAL)``) in
every figure, as the restart-throughput figure requires, so that no handler is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import queue
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import supervisor  # noqa: E402
from supervisor import (  # noqa: E402
    ProcessFunc,
    ProcessOption,
    ShutdownReport,
    Supervisor,
    SupervisorEvent,
    TerminateChannel,
)

LONG = 120.0
"""Upper bound (seconds) on any wait, so that a broken benchmark fails instead of hanging."""

HUGE_COUNT = sys.maxsize
"""A retry or recover count that is never reached during a benchmark."""

perf_counter = time.perf_counter


# ---------------------------------------------------------------------------
# Sizes


@dataclasses.dataclass(frozen=True)
class Sizes:
    shutdown_ns: tuple[int, ...]
    shutdown_repeats: int
    startup_n: int
    startup_repeats: int
    throughput_seconds: float
    throughput_repeats: int
    delay_interval: float
    delay_restarts: int
    idle_n: int
    idle_seconds: float
    import_repeats: int
    status_n: int
    status_calls: int


FULL = Sizes(
    shutdown_ns=(100, 1_000),
    shutdown_repeats=9,
    startup_n=10_000,
    startup_repeats=3,
    throughput_seconds=1.0,
    throughput_repeats=3,
    delay_interval=0.010,
    delay_restarts=200,
    idle_n=1_000,
    idle_seconds=5.0,
    import_repeats=7,
    status_n=10_000,
    status_calls=21,
)

QUICK = Sizes(
    shutdown_ns=(100,),
    shutdown_repeats=1,
    startup_n=1_000,
    startup_repeats=1,
    throughput_seconds=0.2,
    throughput_repeats=1,
    delay_interval=0.010,
    delay_restarts=50,
    idle_n=1_000,
    idle_seconds=1.0,
    import_repeats=2,
    status_n=1_000,
    status_calls=11,
)


# ---------------------------------------------------------------------------
# Results and targets


@dataclasses.dataclass(frozen=True)
class Target:
    """A target as printed, and how to check a (supervisor, baseline) pair against it."""

    text: str
    check: Callable[[float, float], bool] | None = None


def at_most_times(factor: float) -> Target:
    return Target(f"<= {factor:g}x bare", lambda value, bare: value <= factor * bare)


def at_least(limit: float, unit: str) -> Target:
    return Target(f">= {limit:,.0f} {unit}", lambda value, bare: value >= limit)


def at_most(limit: float, unit: str) -> Target:
    return Target(f"<= {limit:g} {unit}", lambda value, bare: value <= limit)


def same_as_bare(slack: float, unit: str) -> Target:
    return Target(f"~ bare (+{slack:g} {unit})", lambda value, bare: value <= 1.2 * bare + slack)


NO_TARGET = Target("(none: reported)")


@dataclasses.dataclass(frozen=True)
class Row:
    figure: str
    value: float
    bare: float
    target: Target
    fmt: str = ",.3f"

    @property
    def ratio(self) -> str:
        if self.bare == 0:
            return "n/a"
        return f"{self.value / self.bare:.2f}x"

    @property
    def verdict(self) -> str:
        if self.target.check is None:
            return "-"
        return "met" if self.target.check(self.value, self.bare) else "MISSED"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def runs_label(repeats: int) -> str:
    return f"median of {repeats}" if repeats > 1 else "1 run"


def p99(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


# ---------------------------------------------------------------------------
# Helpers shared by the figures


class EntryGate:
    """Counts threads entering their function; ``all_in`` is set by the last expected one."""

    def __init__(self, expected: int) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._expected = expected
        self.all_in = threading.Event()

    def enter(self) -> None:
        with self._lock:
            self._count += 1
            if self._count == self._expected:
                self.all_in.set()

    def wait(self) -> None:
        if not self.all_in.wait(LONG):
            raise RuntimeError(
                f"only {self._count} of {self._expected} threads entered within {LONG} s"
            )


def cooperative(gate: EntryGate) -> ProcessFunc:
    """A process that says it has entered, waits for its finish signal and returns."""

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        gate.enter()
        finish_signal.wait()
        return None

    return process


def bare_worker(gate: EntryGate, event: threading.Event) -> None:
    gate.enter()
    event.wait()


def start_supervisor(
    n: int,
    process: ProcessFunc,
    options: ProcessOption | None = None,
    on_event: Callable[[SupervisorEvent], object] | None = None,
) -> Supervisor:
    sup = Supervisor(shutdown_timeout=LONG, on_event=on_event)
    for i in range(n):
        sup.register(f"p{i}", process, options)
    sup.start()
    return sup


def stop_supervisor(sup: Supervisor) -> ShutdownReport:
    """Shut down and check that every process finished (idempotent)."""
    sup.shutdown()
    report = sup.wait_on_shutdown_signal(handle_signals=False)
    if report.unfinished:
        raise RuntimeError(f"{len(report.unfinished)} processes did not finish: {report}")
    return report


def start_bare(n: int, gate: EntryGate) -> tuple[list[threading.Event], list[threading.Thread]]:
    events = [threading.Event() for _ in range(n)]
    threads = [
        threading.Thread(target=bare_worker, args=(gate, event), daemon=True) for event in events
    ]
    for thread in threads:
        thread.start()
    return events, threads


def release_bare(events: Sequence[threading.Event], threads: Sequence[threading.Thread]) -> None:
    for event in events:
        event.set()
    for thread in threads:
        if thread.ident is not None:
            thread.join(LONG)


def settle_threads(expected: int) -> None:
    """Wait (outside any timed region) until only ``expected`` threads are alive."""
    deadline = time.monotonic() + LONG
    while threading.active_count() > expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{threading.active_count() - expected} threads were left behind")
        time.sleep(0.001)


def channel() -> TerminateChannel:
    simple: queue.SimpleQueue[str] = queue.SimpleQueue()
    return simple


# ---------------------------------------------------------------------------
# 1. Shutdown latency


def shutdown_supervisor_once(n: int) -> float:
    gate = EntryGate(n)
    sup = start_supervisor(n, cooperative(gate))
    try:
        gate.wait()
        began = perf_counter()
        sup.shutdown()
        report = sup.wait_on_shutdown_signal(handle_signals=False)
        elapsed = perf_counter() - began
    finally:
        stop_supervisor(sup)
    if report.unfinished or len(report.finished) != n:
        raise RuntimeError(f"shutdown did not finish every process: {report}")
    return elapsed


def shutdown_bare_once(n: int) -> float:
    gate = EntryGate(n)
    events, threads = start_bare(n, gate)
    try:
        gate.wait()
        began = perf_counter()
        for event in events:
            event.set()
        for thread in threads:
            thread.join()
        elapsed = perf_counter() - began
    finally:
        release_bare(events, threads)
    return elapsed


def bench_shutdown(sizes: Sizes) -> list[Row]:
    rows = []
    baseline_threads = threading.active_count()
    for n in sizes.shutdown_ns:
        sup_times: list[float] = []
        bare_times: list[float] = []
        for repeat in range(sizes.shutdown_repeats):
            # Alternate the order so that a drift in the machine's speed hits both.
            order = (True, False) if repeat % 2 == 0 else (False, True)
            for use_supervisor in order:
                if use_supervisor:
                    sup_times.append(shutdown_supervisor_once(n))
                else:
                    bare_times.append(shutdown_bare_once(n))
                settle_threads(baseline_threads)
        rows.append(
            Row(
                f"1. shutdown latency, N={n:,} (ms, {runs_label(sizes.shutdown_repeats)})",
                median(sup_times) * 1e3,
                median(bare_times) * 1e3,
                at_most_times(1.2),
            )
        )
    return rows


# ---------------------------------------------------------------------------
# 2. Start-up at scale (each case runs in a fresh interpreter: this script, --case)


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    On Linux this is VmHWM from /proc/self/status: ru_maxrss is not used there because
    the kernel carries it over fork and exec, so a child's ru_maxrss starts at its
    parent's RSS (here: this script's, whatever earlier figures made it).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else KiB


def startup_case(kind: str, n: int) -> dict[str, float]:
    """Run in a fresh subprocess: start n processes (or bare threads), time until all
    have entered their function, release them, and report the peak RSS."""
    rss_before = peak_rss_bytes()
    gate = EntryGate(n)
    if kind == "supervisor":
        sup = Supervisor(shutdown_timeout=LONG)
        process = cooperative(gate)
        for i in range(n):
            sup.register(f"p{i}", process)
        began = perf_counter()
        try:
            sup.start()
            gate.wait()
            elapsed = perf_counter() - began
        finally:
            stop_supervisor(sup)
    elif kind == "bare":
        # The Events exist before the clock starts, as a process's finish signal is
        # created by register(); the Thread objects are created inside, as start() does.
        events = [threading.Event() for _ in range(n)]
        threads: list[threading.Thread] = []
        began = perf_counter()
        try:
            for event in events:
                thread = threading.Thread(target=bare_worker, args=(gate, event), daemon=True)
                threads.append(thread)
                thread.start()
            gate.wait()
            elapsed = perf_counter() - began
        finally:
            release_bare(events, threads)
    else:
        raise ValueError(f"unknown start-up case {kind!r}")
    return {"seconds": elapsed, "peak_rss": peak_rss_bytes(), "rss_before": rss_before}


def run_startup_subprocess(kind: str, n: int) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--case", f"startup-{kind}"]
    done = subprocess.run(
        [*command, "--n", str(n)], capture_output=True, text=True, timeout=LONG * 2, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_startup(sizes: Sizes) -> list[Row]:
    n = sizes.startup_n
    sup_runs: list[dict[str, float]] = []
    bare_runs: list[dict[str, float]] = []
    for repeat in range(sizes.startup_repeats):
        for kind in ("supervisor", "bare") if repeat % 2 == 0 else ("bare", "supervisor"):
            (sup_runs if kind == "supervisor" else bare_runs).append(
                run_startup_subprocess(kind, n)
            )

    def med(runs: list[dict[str, float]], key: str) -> float:
        return median([run[key] for run in runs])

    def growth(runs: list[dict[str, float]]) -> float:
        return median([run["peak_rss"] - run["rss_before"] for run in runs])

    mib = 1024 * 1024
    repeats = runs_label(sizes.startup_repeats)
    return [
        Row(
            f"2. start-up, N={n:,}: start() to all in (ms, {repeats})",
            med(sup_runs, "seconds") * 1e3,
            med(bare_runs, "seconds") * 1e3,
            at_most_times(1.2),
        ),
        Row(
            f"2. start-up, N={n:,}: peak RSS (MiB)",
            med(sup_runs, "peak_rss") / mib,
            med(bare_runs, "peak_rss") / mib,
            at_most_times(1.2),
            ",.1f",
        ),
        Row(
            f"2. start-up, N={n:,}: RSS growth, registration included (MiB)",
            growth(sup_runs) / mib,
            growth(bare_runs) / mib,
            NO_TARGET,
            ",.1f",
        ),
    ]


# ---------------------------------------------------------------------------
# 3. Restart throughput


class RunCounter:
    """Counts runs of a process; only the process's own thread writes ``runs``."""

    __slots__ = ("first", "runs")

    def __init__(self) -> None:
        self.runs = 0
        self.first = threading.Event()

    def rate(self, seconds: float) -> float:
        """Runs per second over ``seconds``, counted from the first run on."""
        if not self.first.wait(LONG):
            raise RuntimeError("the process never ran")
        runs_before, began = self.runs, perf_counter()
        time.sleep(seconds)
        runs_after, ended = self.runs, perf_counter()
        return (runs_after - runs_before) / (ended - began)


def failing_process(counter: RunCounter, *, raises: bool) -> ProcessFunc:
    """A process that counts its runs and fails each one: it raises or returns an error."""

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        counter.runs += 1
        if counter.runs == 1:
            counter.first.set()
        if raises:
            raise ValueError("boom")
        return ValueError("boom")

    return process


def raising_process(counter: RunCounter) -> ProcessFunc:
    return failing_process(counter, raises=True)


def erring_process(counter: RunCounter) -> ProcessFunc:
    return failing_process(counter, raises=False)


def ignore_event(event: SupervisorEvent) -> None:
    return None


def supervised_rate(
    seconds: float,
    make: Callable[[RunCounter], ProcessFunc],
    options: ProcessOption,
    *,
    hook: bool = False,
) -> float:
    counter = RunCounter()
    sup = start_supervisor(1, make(counter), options, on_event=ignore_event if hook else None)
    try:
        return counter.rate(seconds)
    finally:
        stop_supervisor(sup)


def bare_raise_loop(stop: threading.Event, process: ProcessFunc) -> BaseException | None:
    """The baseline of a raising process: a try/except loop in one thread."""
    terminate_channel = channel()
    last_error: BaseException | None = None
    while not stop.is_set():
        try:
            process(stop, "bare", terminate_channel)
        except Exception as exc:
            last_error = exc
    return last_error


def bare_return_loop(stop: threading.Event, process: ProcessFunc) -> BaseException | None:
    """The baseline of a process that returns an error: a loop in one thread."""
    terminate_channel = channel()
    last_error: BaseException | None = None
    while not stop.is_set():
        result = process(stop, "bare", terminate_channel)
        if result is not None:
            last_error = result
    return last_error


def bare_rate(
    seconds: float,
    make: Callable[[RunCounter], ProcessFunc],
    loop: Callable[[threading.Event, ProcessFunc], object],
) -> float:
    counter = RunCounter()
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop, make(counter)), daemon=True)
    thread.start()
    try:
        return counter.rate(seconds)
    finally:
        stop.set()
        thread.join(LONG)


def bench_throughput(sizes: Sizes) -> list[Row]:
    seconds, repeats = sizes.throughput_seconds, sizes.throughput_repeats
    recover = ProcessOption(recover_interval=0, recover_count=HUGE_COUNT, is_fatal=False)
    retry = ProcessOption(retry_interval=0, retry_count=HUGE_COUNT, is_fatal=False)
    cases: list[tuple[str, Callable[[], float], Callable[[], float]]] = [
        (
            "3a. restarts/s, raises, recover_interval=0",
            lambda: supervised_rate(seconds, raising_process, recover),
            lambda: bare_rate(seconds, raising_process, bare_raise_loop),
        ),
        (
            "3b. restarts/s, returns error, retry_interval=0",
            lambda: supervised_rate(seconds, erring_process, retry),
            lambda: bare_rate(seconds, erring_process, bare_return_loop),
        ),
        (
            "3c. restarts/s, as 3a + no-op on_event hook",
            lambda: supervised_rate(seconds, raising_process, recover, hook=True),
            lambda: bare_rate(seconds, raising_process, bare_raise_loop),
        ),
    ]
    rows = []
    for figure, supervised, bare in cases:
        sup_rates: list[float] = []
        bare_rates: list[float] = []
        for repeat in range(repeats):
            if repeat % 2 == 0:
                sup_rates.append(supervised())
                bare_rates.append(bare())
            else:
                bare_rates.append(bare())
                sup_rates.append(supervised())
        rows.append(
            Row(
                f"{figure} ({runs_label(repeats)})",
                median(sup_rates),
                median(bare_rates),
                at_least(200_000, "/s"),
                ",.0f",
            )
        )
    return rows


# ---------------------------------------------------------------------------
# 4. Restart delay accuracy


class Timeline:
    """When each run of a process started and when each failed run ended."""

    def __init__(self, runs_needed: int) -> None:
        self.runs_needed = runs_needed
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.done = threading.Event()

    def lateness(self, interval: float) -> list[float]:
        """For each restart: the time from a failed run's end to the next run's start,
        minus the interval."""
        return [
            start - end - interval for end, start in zip(self.ends, self.starts[1:], strict=False)
        ]


def timed_raising_process(timeline: Timeline) -> ProcessFunc:
    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        timeline.starts.append(perf_counter())
        if len(timeline.starts) > timeline.runs_needed:
            timeline.done.set()
            finish_signal.wait()
            return None
        timeline.ends.append(perf_counter())
        raise ValueError("boom")

    return process


def bare_delay_loop(stop: threading.Event, process: ProcessFunc, interval: float) -> None:
    terminate_channel = channel()
    while not stop.is_set():
        try:
            process(stop, "bare", terminate_channel)
        except Exception:
            stop.wait(interval)


def bench_delay(sizes: Sizes) -> list[Row]:
    interval, restarts = sizes.delay_interval, sizes.delay_restarts

    sup_timeline = Timeline(restarts)
    options = ProcessOption(recover_interval=interval, recover_count=HUGE_COUNT, is_fatal=False)
    sup = start_supervisor(1, timed_raising_process(sup_timeline), options)
    try:
        if not sup_timeline.done.wait(LONG):
            raise RuntimeError("the supervised process did not restart often enough")
    finally:
        stop_supervisor(sup)

    bare_timeline = Timeline(restarts)
    stop = threading.Event()
    thread = threading.Thread(
        target=bare_delay_loop,
        args=(stop, timed_raising_process(bare_timeline), interval),
        daemon=True,
    )
    thread.start()
    try:
        if not bare_timeline.done.wait(LONG):
            raise RuntimeError("the bare loop did not restart often enough")
    finally:
        stop.set()
        thread.join(LONG)

    sup_late = [late * 1e3 for late in sup_timeline.lateness(interval)]
    bare_late = [late * 1e3 for late in bare_timeline.lateness(interval)]
    label = f"recover_interval={interval * 1e3:g} ms, {restarts} restarts"
    return [
        Row(
            f"4. restart lateness, median (ms; {label})",
            median(sup_late),
            median(bare_late),
            at_most(1.0, "ms"),
        ),
        Row(
            f"4. restart lateness, p99 (ms; {label})",
            p99(sup_late),
            p99(bare_late),
            NO_TARGET,
        ),
    ]


# ---------------------------------------------------------------------------
# 5. Idle cost


def idle_cpu(seconds: float) -> float:
    """CPU seconds the whole process uses while the main thread sleeps ``seconds``."""
    time.sleep(0.05)  # let the threads that just entered settle in their wait
    cpu_before = time.process_time()
    time.sleep(seconds)
    return time.process_time() - cpu_before


def bench_idle(sizes: Sizes) -> list[Row]:
    n, seconds = sizes.idle_n, sizes.idle_seconds
    baseline_threads = threading.active_count()

    gate = EntryGate(n)
    events, threads = start_bare(n, gate)
    try:
        gate.wait()
        bare_cpu = idle_cpu(seconds)
    finally:
        release_bare(events, threads)
    settle_threads(baseline_threads)

    gate = EntryGate(n)
    sup = start_supervisor(n, cooperative(gate))
    try:
        gate.wait()
        sup_cpu = idle_cpu(seconds)
    finally:
        stop_supervisor(sup)
    settle_threads(baseline_threads)

    return [
        Row(
            f"5. idle CPU, N={n:,} for {seconds:g} s (CPU ms)",
            sup_cpu * 1e3,
            bare_cpu * 1e3,
            same_as_bare(10, "ms"),
        )
    ]


# ---------------------------------------------------------------------------
# 6. Import time


IMPORT_LINE = re.compile(r"import time:\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(.*?)\s*$")


def import_time(module: str, where: Path, *, write_bytecode: bool) -> tuple[int, int]:
    """(self, cumulative) microseconds of ``import module`` in a fresh interpreter whose
    current directory is ``where``."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    flags = [] if write_bytecode else ["-B"]
    done = subprocess.run(
        [sys.executable, *flags, "-X", "importtime", "-c", f"import {module}"],
        cwd=where,
        env=environment,
        capture_output=True,
        text=True,
        timeout=LONG,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{done.stderr}")
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match and match.group(3) == module:
            return int(match.group(1)), int(match.group(2))
    raise RuntimeError(f"no import time line for {module!r} in:\n{done.stderr}")


def bench_import(sizes: Sizes) -> list[Row]:
    # supervisor.py is copied into two scratch directories so that neither the
    # repository nor PYTHONDONTWRITEBYTECODE (set in some environments) decides whether
    # a .pyc exists: "cached" imports it from a .pyc, as an installed copy is, and
    # "from source" compiles it on every import (-B, no __pycache__). The standard
    # library, threading included, comes from its own .pyc files in both.
    source = ROOT / "supervisor.py"
    with tempfile.TemporaryDirectory() as cached, tempfile.TemporaryDirectory() as uncached:
        for directory in (cached, uncached):
            shutil.copy2(source, directory)
        cached_dir, uncached_dir = Path(cached), Path(uncached)
        import_time("supervisor", cached_dir, write_bytecode=True)  # writes the .pyc
        if not list((cached_dir / "__pycache__").glob("supervisor.*.pyc")):
            raise RuntimeError("python did not write supervisor's .pyc")
        warm: list[tuple[int, int]] = []
        cold: list[tuple[int, int]] = []
        bare: list[tuple[int, int]] = []
        for _ in range(sizes.import_repeats):
            warm.append(import_time("supervisor", cached_dir, write_bytecode=True))
            cold.append(import_time("supervisor", uncached_dir, write_bytecode=False))
            bare.append(import_time("threading", cached_dir, write_bytecode=True))

    def med(runs: list[tuple[int, int]], index: int) -> float:
        return median([run[index] for run in runs])

    repeats = runs_label(sizes.import_repeats)
    return [
        Row(
            f"6. import supervisor, self, .pyc cached (us, {repeats})",
            med(warm, 0),
            med(bare, 0),
            NO_TARGET,
            ",.0f",
        ),
        Row(
            "6. import supervisor, cumulative, .pyc cached (us)",
            med(warm, 1),
            med(bare, 1),
            NO_TARGET,
            ",.0f",
        ),
        Row(
            "6. import supervisor, self, compiled from source (us)",
            med(cold, 0),
            med(bare, 0),
            NO_TARGET,
            ",.0f",
        ),
    ]


# ---------------------------------------------------------------------------
# 7. status() cost


def time_calls(function: Callable[[], object], calls: int) -> float:
    timings = []
    for _ in range(calls):
        began = perf_counter()
        function()
        timings.append(perf_counter() - began)
    return median(timings)


def bench_status(sizes: Sizes) -> list[Row]:
    n, calls = sizes.status_n, sizes.status_calls
    baseline_threads = threading.active_count()
    gate = EntryGate(n)
    sup = start_supervisor(n, cooperative(gate))
    try:
        gate.wait()
        snapshot = sup.status()
        if len(snapshot) != n:
            raise RuntimeError(f"status() listed {len(snapshot)} of {n} processes")
        sup_time = time_calls(sup.status, calls)
        bare_time = time_calls(threading.enumerate, calls)
    finally:
        stop_supervisor(sup)
    settle_threads(baseline_threads)
    return [
        Row(
            f"7. status(), N={n:,} (ms, median of {calls}; bare: threading.enumerate())",
            sup_time * 1e3,
            bare_time * 1e3,
            NO_TARGET,
        )
    ]


# ---------------------------------------------------------------------------
# The table


FIGURES: dict[int, tuple[str, Callable[[Sizes], list[Row]]]] = {
    1: ("shutdown latency", bench_shutdown),
    2: ("start-up at scale", bench_startup),
    3: ("restart throughput", bench_throughput),
    4: ("restart delay accuracy", bench_delay),
    5: ("idle cost", bench_idle),
    6: ("import time", bench_import),
    7: ("status() cost", bench_status),
}

BASELINES = """\
Baselines (bare threading, measured in the same run):
  1. N threads each waiting on its own Event; time from setting all Events to joining all threads.
  2. N threads each waiting on its own Event (Events made before the clock starts, as register()
     makes finish signals; Threads made and started inside it, as start() does); each case runs in
     a fresh interpreter of this script (--case), and both import the same modules, so the ratio
     is the per-process cost. Peak RSS is VmHWM (ru_maxrss off Linux) at the end of the run.
  3. One thread calling the same process function in a loop: try/except for 3a and 3c, a check of
     the returned error for 3b; no supervisor.
  4. One thread: try/except around the same process function, then Event.wait(interval).
  5. N threads each waiting on its own Event; CPU is time.process_time() of the whole process.
  6. `python -X importtime -c "import threading"`: threading's self and cumulative time, from its
     .pyc. supervisor is imported from a copy in a scratch directory, from a .pyc ("cached") and
     compiled from its source on each import (python -B, no __pycache__).
  7. threading.enumerate() with the same N threads alive.
Ratio = supervisor / bare. Verdicts are information only: nothing here asserts on a timing."""


def header(argv: Sequence[str], sizes: Sizes) -> str:
    cpus = os.cpu_count()
    implementation = platform.python_implementation()
    lines = [
        "supervisor.py benchmarks: supervision against bare threads",
        f"command:  {shlex.join([sys.executable, *argv])}",
        f"machine:  {platform.platform()}, {platform.machine()}, {cpus} CPUs",
        f"python:   {implementation} {platform.python_version()} ({sys.executable})",
        f"module:   supervisor {supervisor.__version__} ({Path(supervisor.__file__).resolve()})"
        f"{git_revision()}",
        f"date:     {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        f"load:     {load_average()} (1, 5, 15 min; other work on the machine skews timings)",
        f"sizes:    {'quick' if sizes is QUICK else 'full'}; logging disabled in every figure",
    ]
    return "\n".join(lines)


def load_average() -> str:
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "unknown"


def git_revision() -> str:
    """ ", git abc1234" (", modified" if supervisor.py differs from it), or "" outside git."""
    try:
        revision = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "supervisor.py"],
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return ""
    return f", git {revision}{', modified' if changed else ''}" if revision else ""


def table(rows: Sequence[Row]) -> str:
    headings = ("figure", "supervisor", "bare", "ratio", "target", "verdict")
    cells = [
        (
            row.figure,
            format(row.value, row.fmt),
            format(row.bare, row.fmt),
            row.ratio,
            row.target.text,
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [headings, *cells]) for i in range(len(headings))]

    def render(line: Sequence[str]) -> str:
        parts = [line[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(line[1:4], widths[1:4], strict=True)]
        parts += [line[4].ljust(widths[4]), line[5]]
        return "  ".join(parts).rstrip()

    rule = "-" * len(render(headings))
    return "\n".join([render(headings), rule, *(render(line) for line in cells)])


def parse_figures(text: str) -> list[int]:
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    unknown = [number for number in chosen if number not in FIGURES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"figures are 1 to {len(FIGURES)}, got {text!r}")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds; CI)")
    parser.add_argument(
        "--figures", type=parse_figures, default=sorted(FIGURES), help="e.g. 1,3 (default: all)"
    )
    parser.add_argument(
        "--case", choices=("startup-supervisor", "startup-bare"), help=argparse.SUPPRESS
    )
    parser.add_argument("--n", type=int, default=FULL.startup_n, help=argparse.SUPPRESS)
    args = parser.parse_args(arguments[1:])
    logging.disable(logging.CRITICAL)

    if args.case is not None:
        print(json.dumps(startup_case(args.case.removeprefix("startup-"), args.n)))
        return 0

    sizes = QUICK if args.quick else FULL
    print(header(arguments, sizes), flush=True)
    rows: list[Row] = []
    began = perf_counter()
    for number in args.figures:
        name, bench = FIGURES[number]
        figure_began = perf_counter()
        rows.extend(bench(sizes))
        elapsed = perf_counter() - figure_began
        print(f"  ran {number}. {name} in {elapsed:.1f} s", file=sys.stderr, flush=True)
    print()
    print(table(rows))
    print()
    print(BASELINES)
    print(f"\ntotal time: {perf_counter() - began:.1f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
