#!/usr/bin/env python3
"""Benchmarks for supervisor.py: the cost of supervision, against bare threads and against
the module as it was before the redesign (the baseline module), measured in the same run.

Usage (from the repository root)::

    python benchmarks/bench_supervisor.py            # full sizes: about five minutes
    python benchmarks/bench_supervisor.py --quick    # small sizes: about ten seconds (CI)
    python benchmarks/bench_supervisor.py --figures 1,3   # only some figures
    python benchmarks/bench_supervisor.py --baseline HEAD~3   # another baseline revision
    python benchmarks/bench_supervisor.py --baseline none     # no baseline module
    python benchmarks/bench_supervisor.py --json out.json     # also write the rows as JSON

"This module" is ``supervisor.py`` in the working tree. "The baseline module" is
``supervisor.py`` as it was at ``--baseline REV`` (default ``e141f83``, the last commit
before the redesign): ``git show REV:supervisor.py`` is written to a scratch directory and
imported under another name (``supervisor_baseline``), so that both run in this one
interpreter, in interleaved rounds (this, baseline, bare, then the reverse order, ...),
and the table gives the median of each, their ratio and the target. Without git or
without that revision (a tarball, a shallow clone), a note says so and the comparisons
with the baseline module are skipped; everything else still runs.

Only the public API is used (``Supervisor``, ``register``, ``start``, ``shutdown``,
``wait_on_shutdown_signal``, ``status``, ``on_event``), so the script runs against any
module that keeps it. Figures for the planned ``supervisor.heartbeat()`` and
``ProcessOption(heartbeat_timeout=...)`` (issue #13) say "not available in this module"
until the module has them.

Nothing here asserts on a timing: the verdict column is information only, and the script
exits 0 whatever the figures are (it exits non-zero only if a benchmark itself breaks,
e.g. a thread does not start or a process does not finish). No absolute path is printed
or written: paths are given relative to the repository root.

Standard library only. Logging is disabled (``logging.disable(logging.CRITICAL)``) in
every figure, as the restart-throughput figures require, so that no handler is timed.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib.util
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
import types
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import supervisor  # noqa: E402

if TYPE_CHECKING:
    from supervisor import (
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

DEFAULT_BASELINE = "e141f83"
"""The last commit before the redesign: the default baseline module."""

BASELINE_MODULE_NAME = "supervisor_baseline"

perf_counter = time.perf_counter
perf_counter_ns = time.perf_counter_ns


# ---------------------------------------------------------------------------
# Sizes


@dataclasses.dataclass(frozen=True)
class Sizes:
    name: str
    shutdown_cases: tuple[tuple[int, int], ...]  # (N, rounds)
    slow_n: int
    slow_delay: float
    slow_rounds: int
    startup_n: int
    startup_repeats: int
    throughput_seconds: float
    throughput_rounds: int
    throughput_ns: tuple[int, ...]  # 3a and 3b with N processes restarting at once
    delay_interval: float
    delay_restarts: int  # per round
    delay_rounds: int
    idle_n: int
    idle_seconds: float
    idle_rounds: int
    import_repeats: int
    status_ns: tuple[int, ...]
    status_calls: int
    heartbeat_calls: int
    heartbeat_rounds: int
    beat_n: int
    beat_seconds: float
    beat_rounds: int


FULL = Sizes(
    name="full",
    shutdown_cases=((10, 15), (100, 9), (1_000, 5), (5_000, 3)),
    slow_n=1_000,
    slow_delay=0.050,
    slow_rounds=5,
    startup_n=10_000,
    startup_repeats=3,
    throughput_seconds=0.5,
    throughput_rounds=5,
    throughput_ns=(10, 100),  # 1,000 spinning threads: joining the bare ones takes seconds
    delay_interval=0.010,
    delay_restarts=50,
    delay_rounds=4,
    idle_n=1_000,
    idle_seconds=2.5,
    idle_rounds=2,
    import_repeats=7,
    status_ns=(100, 1_000, 5_000, 10_000),
    status_calls=21,
    heartbeat_calls=200_000,
    heartbeat_rounds=7,
    beat_n=1_000,
    beat_seconds=3.0,
    beat_rounds=2,
)

QUICK = Sizes(
    name="quick",
    shutdown_cases=((10, 3), (100, 3)),
    slow_n=100,
    slow_delay=0.050,
    slow_rounds=3,
    startup_n=1_000,
    startup_repeats=1,
    throughput_seconds=0.1,
    throughput_rounds=3,
    throughput_ns=(10,),
    delay_interval=0.010,
    delay_restarts=20,
    delay_rounds=2,
    idle_n=1_000,
    idle_seconds=0.5,
    idle_rounds=1,
    import_repeats=2,
    status_ns=(100, 1_000),
    status_calls=11,
    heartbeat_calls=20_000,
    heartbeat_rounds=3,
    beat_n=200,
    beat_seconds=1.0,
    beat_rounds=1,
)


# ---------------------------------------------------------------------------
# The modules under test


@dataclasses.dataclass(frozen=True)
class Impl:
    """A supervisor module under test: this module, or the baseline module."""

    label: str
    module: types.ModuleType

    def supervisor(
        self,
        on_event: Callable[[SupervisorEvent], object] | None = None,
        shutdown_timeout: float = LONG,
    ) -> Supervisor:
        return cast("Supervisor", self.module.Supervisor(shutdown_timeout, on_event=on_event))

    def option(self, **fields: object) -> ProcessOption:
        return cast("ProcessOption", self.module.ProcessOption(**fields))

    @property
    def version(self) -> str:
        return str(getattr(self.module, "__version__", "?"))


THIS = Impl("this", supervisor)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The baseline module, loaded from git; ``impl`` is None when it is not available."""

    revision: str  # as asked for (--baseline)
    impl: Impl | None
    source: bytes | None
    path: Path | None  # the scratch copy (never printed)
    note: str  # why it is missing, or what it is

    @property
    def label(self) -> str:
        return self.impl.label if self.impl is not None else self.revision


def load_module(path: Path, name: str) -> types.ModuleType:
    """Import the file at ``path`` as the module ``name`` (registered in sys.modules, as
    dataclasses need)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def git(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, timeout=30, check=True
    )


def load_baseline(revision: str) -> Baseline:
    """``git show REVISION:supervisor.py`` into a scratch directory, imported as
    ``supervisor_baseline``; on any failure, a Baseline without a module and a note."""
    if revision.lower() == "none":
        return Baseline(revision, None, None, None, "none asked for (--baseline none)")
    try:
        commit = git("rev-parse", "--short", f"{revision}^{{commit}}").stdout.decode().strip()
        source = git("show", f"{commit}:supervisor.py").stdout
    except FileNotFoundError:
        return Baseline(revision, None, None, None, "git is not installed")
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode(errors="replace").strip().splitlines()
        why = reason[-1].replace(str(ROOT), ".") if reason else f"git exited with {exc.returncode}"
        return Baseline(revision, None, None, None, f"not in this checkout ({why})")
    except (OSError, subprocess.SubprocessError) as exc:
        return Baseline(revision, None, None, None, f"git failed ({type(exc).__name__})")
    scratch = Path(tempfile.mkdtemp(prefix="bench-supervisor-baseline-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    path = scratch / f"{BASELINE_MODULE_NAME}.py"
    path.write_bytes(source)
    try:
        module = load_module(path, BASELINE_MODULE_NAME)
    except Exception as exc:
        message = str(exc).replace(str(scratch), "<scratch>")
        return Baseline(revision, None, source, None, f"does not import ({message})")
    same = source == (ROOT / "supervisor.py").read_bytes()
    note = f"git show {commit}:supervisor.py" + (
        "; the same file as this module: the ratios with it measure noise" if same else ""
    )
    return Baseline(revision, Impl(commit, module), source, path, note)


# ---------------------------------------------------------------------------
# Results and targets


@dataclasses.dataclass(frozen=True)
class Target:
    """A target as printed, and how to check a (value, baseline) pair against it."""

    text: str
    check: Callable[[float, float], bool] | None = None


def at_most_times(factor: float, vs: str) -> Target:
    return Target(f"<= {factor:g}x {vs}", lambda value, base: value <= factor * base)


def at_least_times(factor: float, vs: str) -> Target:
    return Target(f">= {factor:g}x {vs}", lambda value, base: value >= factor * base)


def at_least(limit: float, unit: str) -> Target:
    return Target(f">= {limit:,.0f} {unit}", lambda value, base: value >= limit)


def at_most(limit: float, unit: str) -> Target:
    return Target(f"<= {limit:g} {unit}", lambda value, base: value <= limit)


def same_as(vs: str, slack: float, unit: str) -> Target:
    return Target(f"~ {vs} (+{slack:g} {unit})", lambda value, base: value <= 1.2 * base + slack)


NO_TARGET = Target("(reported)")


@dataclasses.dataclass(frozen=True)
class Row:
    figure: str
    value: float | None  # this module's figure; None: not available
    base: float | None  # the baseline's figure
    vs: str  # which baseline
    target: Target = NO_TARGET
    fmt: str = ",.3f"
    note: str = ""

    @property
    def ratio(self) -> str:
        if self.value is None or self.base is None or self.base == 0:
            return "n/a"
        return f"{self.value / self.base:.2f}x"

    @property
    def verdict(self) -> str:
        if self.note:
            return self.note
        if self.target.check is None or self.value is None or self.base is None:
            return "-"
        return "met" if self.target.check(self.value, self.base) else "MISSED"

    def cell(self, number: float | None) -> str:
        return "-" if number is None else format(number, self.fmt)

    def record(self) -> dict[str, object]:
        return {
            "figure": self.figure,
            "this": self.value,
            "baseline": self.base,
            "vs": self.vs,
            "ratio": self.ratio,
            "target": self.target.text,
            "verdict": self.verdict,
        }


def unavailable(figure: str, vs: str, why: str = "not available in this module") -> Row:
    return Row(figure, None, None, vs, NO_TARGET, note=why)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def runs_label(repeats: int) -> str:
    return f"median of {repeats}" if repeats > 1 else "1 run"


def p99(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def interleave(rounds: int, contestants: Sequence[Callable[[], float]]) -> list[list[float]]:
    """Run each contestant once per round, in turn (the order reversed every other round,
    so that a drift in the machine's speed hits all alike); each one's results."""
    results: list[list[float]] = [[] for _ in contestants]
    for round_number in range(rounds):
        order = list(range(len(contestants)))
        if round_number % 2:
            order.reverse()
        for index in order:
            results[index].append(contestants[index]())
    return results


@dataclasses.dataclass(frozen=True)
class Context:
    sizes: Sizes
    baseline: Baseline

    @property
    def impls(self) -> list[Impl]:
        """This module, then the baseline module if it is loaded."""
        return [THIS] if self.baseline.impl is None else [THIS, self.baseline.impl]


def versus_baseline(
    context: Context, figure: str, results: Sequence[Sequence[float]], target: Target, fmt: str
) -> list[Row]:
    """The row comparing this module (results[0]) with the baseline module (results[1]),
    or nothing when the baseline module is not loaded."""
    if context.baseline.impl is None:
        return []
    label = context.baseline.label
    return [Row(figure, median(results[0]), median(results[1]), label, target, fmt)]


# ---------------------------------------------------------------------------
# Helpers shared by the figures


class EntryGate:
    """Counts threads entering their function; ``all_in`` is set by the last expected one."""

    def __init__(self, expected: int) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._expected = expected
        self.all_in = threading.Event()
        if expected == 0:
            self.all_in.set()

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


def cooperative(gate: EntryGate, delay: float = 0.0) -> ProcessFunc:
    """A process that says it has entered, waits for its finish signal, takes ``delay``
    seconds to finish, and returns."""

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        gate.enter()
        finish_signal.wait()
        if delay:
            time.sleep(delay)
        return None

    return process


def bare_worker(gate: EntryGate, event: threading.Event, delay: float = 0.0) -> None:
    gate.enter()
    event.wait()
    if delay:
        time.sleep(delay)


def start_supervisor(
    impl: Impl,
    n: int,
    process: ProcessFunc,
    options: ProcessOption | None = None,
    on_event: Callable[[SupervisorEvent], object] | None = None,
) -> Supervisor:
    sup = impl.supervisor(on_event)
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


def start_bare(
    n: int, gate: EntryGate, delay: float = 0.0
) -> tuple[list[threading.Event], list[threading.Thread]]:
    events = [threading.Event() for _ in range(n)]
    threads = [
        threading.Thread(target=bare_worker, args=(gate, event, delay), daemon=True)
        for event in events
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


def noop() -> None:
    """The bare no-op function call that heartbeat() is compared with."""


# ---------------------------------------------------------------------------
# 1. Shutdown latency (cooperative processes), and 8. processes slow to finish


def shutdown_supervisor_once(
    impl: Impl, n: int, delay: float = 0.0, call_times: list[float] | None = None
) -> float:
    """Seconds from shutdown() until the report, all n processes having returned; the
    time the shutdown() call itself took is appended to ``call_times``."""
    gate = EntryGate(n)
    sup = start_supervisor(impl, n, cooperative(gate, delay))
    try:
        gate.wait()
        began = perf_counter()
        sup.shutdown()
        called = perf_counter()
        report = sup.wait_on_shutdown_signal(handle_signals=False)
        elapsed = perf_counter() - began
        if call_times is not None:
            call_times.append(called - began)
    finally:
        stop_supervisor(sup)
    if report.unfinished or len(report.finished) != n:
        raise RuntimeError(f"shutdown did not finish every process: {report}")
    return elapsed


def shutdown_bare_once(n: int, delay: float = 0.0, *, one_at_a_time: bool = False) -> float:
    """Bare threads: set every Event then join every thread, or (one_at_a_time) set one
    Event and join its thread before the next."""
    gate = EntryGate(n)
    events, threads = start_bare(n, gate, delay)
    try:
        gate.wait()
        began = perf_counter()
        if one_at_a_time:
            for event, thread in zip(events, threads, strict=True):
                event.set()
                thread.join()
        else:
            for event in events:
                event.set()
            for thread in threads:
                thread.join()
        elapsed = perf_counter() - began
    finally:
        release_bare(events, threads)
    return elapsed


def settled(function: Callable[[], float]) -> Callable[[], float]:
    """``function``, then a wait (untimed) until the threads it started are gone."""
    threads_before = threading.active_count()

    def run() -> float:
        result = function()
        settle_threads(threads_before)
        return result

    return run


def bench_shutdown(context: Context) -> list[Row]:
    rows = []
    impls = context.impls
    for n, rounds in context.sizes.shutdown_cases:
        calls: list[list[float]] = [[] for _ in impls]
        contestants = [
            settled(partial(shutdown_supervisor_once, impl, n, 0.0, calls[i]))
            for i, impl in enumerate(impls)
        ]
        contestants.append(settled(partial(shutdown_bare_once, n)))
        contestants.append(settled(partial(shutdown_bare_once, n, one_at_a_time=True)))
        results = [[t * 1e3 for t in times] for times in interleave(rounds, contestants)]
        this, bare_all, bare_one = results[0], results[-2], results[-1]
        label = f"1. shutdown, N={n:,} cooperative (ms, {runs_label(rounds)})"
        big = n >= 1_000
        rows.append(Row(label, median(this), median(bare_all), "bare"))
        rows.append(Row(label, median(this), median(bare_one), "1-by-1"))
        # The target: no slower than the baseline module (up to 1,000 processes).
        target = at_most_times(1.1, context.baseline.label) if n <= 1_000 else NO_TARGET
        rows += versus_baseline(context, label, results, target, ",.3f")
        if big:  # where the time goes: the shutdown() call (setting the signals) itself
            calls_ms = [[t * 1e3 for t in times] for times in calls]
            call_label = f"1. shutdown, N={n:,}: the shutdown() call alone (ms)"
            rows += versus_baseline(context, call_label, calls_ms, NO_TARGET, ",.3f")
    return rows


def bench_slow_shutdown(context: Context) -> list[Row]:
    sizes = context.sizes
    n, delay, rounds = sizes.slow_n, sizes.slow_delay, sizes.slow_rounds
    impls = context.impls
    contestants = [settled(partial(shutdown_supervisor_once, impl, n, delay)) for impl in impls]
    contestants.append(settled(partial(shutdown_bare_once, n, delay)))
    results = [[t * 1e3 for t in times] for times in interleave(rounds, contestants)]
    label = (
        f"8. shutdown, N={n:,} each {delay * 1e3:g} ms to finish: all stopped "
        f"(ms, {runs_label(rounds)})"
    )
    rows = [Row(label, median(results[0]), median(results[-1]), "bare")]
    rows += versus_baseline(context, label, results, NO_TARGET, ",.3f")
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


STARTUP_KINDS = ("supervisor", "baseline", "bare")


def startup_case(kind: str, n: int, baseline_file: str | None) -> dict[str, float]:
    """Run in a fresh subprocess: start n processes (or bare threads), time until all
    have entered their function, release them, and report the peak RSS. Every kind loads
    the same modules (the baseline module too, when there is one) before it measures."""
    baseline = None
    if baseline_file is not None:
        baseline = load_module(Path(baseline_file), BASELINE_MODULE_NAME)
    rss_before = peak_rss_bytes()
    gate = EntryGate(n)
    if kind in ("supervisor", "baseline"):
        if kind == "baseline" and baseline is None:
            raise ValueError("--case startup-baseline needs --baseline-file")
        impl = THIS if baseline is None else Impl("baseline", baseline)
        sup = impl.supervisor()
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


def run_startup_subprocess(kind: str, n: int, baseline: Baseline) -> dict[str, float]:
    arguments = ["--case", f"startup-{kind}", "--n", str(n)]
    if baseline.path is not None:
        arguments += ["--baseline-file", str(baseline.path)]
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *arguments],
        capture_output=True,
        text=True,
        timeout=LONG * 2,
        check=False,
    )
    if done.returncode != 0:
        shown = shlex.join([display_path(sys.executable), display_path(__file__), *arguments[:4]])
        raise RuntimeError(f"{shown} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_startup(context: Context) -> list[Row]:
    sizes = context.sizes
    n = sizes.startup_n
    kinds = [kind for kind in STARTUP_KINDS if kind != "baseline" or context.baseline.impl]
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for repeat in range(sizes.startup_repeats):
        for kind in kinds if repeat % 2 == 0 else reversed(kinds):
            runs[kind].append(run_startup_subprocess(kind, n, context.baseline))

    def med(kind: str, key: str) -> float:
        return median([run[key] for run in runs[kind]])

    def growth(kind: str) -> float:
        return median([run["peak_rss"] - run["rss_before"] for run in runs[kind]])

    mib = 1024 * 1024
    repeats = runs_label(sizes.startup_repeats)
    label = context.baseline.label
    have_baseline = "baseline" in runs
    time_label = f"2. start-up, N={n:,}: start() to all in (ms, {repeats})"
    rss_label = f"2. start-up, N={n:,}: peak RSS (MiB)"
    growth_label = f"2. start-up, N={n:,}: RSS growth, registration included (MiB)"
    rows = [
        Row(
            time_label,
            med("supervisor", "seconds") * 1e3,
            med("bare", "seconds") * 1e3,
            "bare",
        )
    ]
    if have_baseline:
        rows.append(
            Row(
                time_label,
                med("supervisor", "seconds") * 1e3,
                med("baseline", "seconds") * 1e3,
                label,
                at_most_times(1.1, label),
            )
        )
    rows.append(
        Row(
            rss_label,
            med("supervisor", "peak_rss") / mib,
            med("bare", "peak_rss") / mib,
            "bare",
            at_most_times(1.2, "bare"),
            ",.1f",
        )
    )
    rows.append(
        Row(growth_label, growth("supervisor") / mib, growth("bare") / mib, "bare", fmt=",.1f")
    )
    if have_baseline:
        rows.append(
            Row(
                growth_label,
                growth("supervisor") / mib,
                growth("baseline") / mib,
                label,
                fmt=",.1f",
            )
        )
    return rows


# ---------------------------------------------------------------------------
# 3. Restart throughput


class RunCounter:
    """Counts runs of a process; only the process's own thread writes ``runs``."""

    __slots__ = ("first", "go", "runs")

    def __init__(self) -> None:
        self.runs = 0
        self.first = threading.Event()
        self.go = threading.Event()  # the start line: the first run waits for it

    def rate(self, seconds: float) -> float:
        """Runs per second over ``seconds``, counted from the first run on."""
        return total_rate([self], seconds)


def total_rate(counters: Sequence[RunCounter], seconds: float) -> float:
    """Runs per second of all the counters together over ``seconds``, counted once each
    has run once. Each first run waits at its own start line (its ``go`` Event), opened
    once all are in, so that threads that spin never slow down the start of the others
    (each thread.start() would wait its turn for the GIL behind all of them); one Event
    per thread, as a shared one's lock, taken again by each woken waiter, is a convoy
    behind the spinning threads."""
    for counter in counters:
        if not counter.first.wait(LONG):
            raise RuntimeError("a process never ran")
    for counter in counters:
        counter.go.set()
    runs_before, began = sum(c.runs for c in counters), perf_counter()
    time.sleep(seconds)
    runs_after, ended = sum(c.runs for c in counters), perf_counter()
    return (runs_after - runs_before) / (ended - began)


def failing_process(counter: RunCounter, *, raises: bool) -> ProcessFunc:
    """A process that counts its runs and fails each one: it raises or returns an error."""

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        counter.runs += 1
        if counter.runs == 1:
            counter.first.set()
            counter.go.wait()
        if raises:
            raise ValueError("boom")
        return ValueError("boom")

    return process


def ignore_event(event: SupervisorEvent) -> None:
    return None


def supervised_rate(impl: Impl, seconds: float, *, raises: bool, hook: bool, n: int = 1) -> float:
    """Restarts per second of n failing processes together (each counts its own runs)."""
    counters = [RunCounter() for _ in range(n)]
    if raises:
        options = impl.option(recover_interval=0, recover_count=HUGE_COUNT, is_fatal=False)
    else:
        options = impl.option(retry_interval=0, retry_count=HUGE_COUNT, is_fatal=False)
    sup = impl.supervisor(ignore_event if hook else None)
    for i, counter in enumerate(counters):
        sup.register(f"p{i}", failing_process(counter, raises=raises), options)
    sup.start()
    try:
        return total_rate(counters, seconds)
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


def bare_rate(seconds: float, *, raises: bool, n: int = 1) -> float:
    """Runs per second of n bare loops together, each in its own thread."""
    counters = [RunCounter() for _ in range(n)]
    stop = threading.Event()
    loop = bare_raise_loop if raises else bare_return_loop
    threads = [
        threading.Thread(
            target=loop, args=(stop, failing_process(counter, raises=raises)), daemon=True
        )
        for counter in counters
    ]
    for thread in threads:
        thread.start()
    try:
        return total_rate(counters, seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(LONG)


def bench_throughput(context: Context) -> list[Row]:
    seconds, rounds = context.sizes.throughput_seconds, context.sizes.throughput_rounds
    label = context.baseline.label
    cases = [
        ("3a. restarts/s, raises, recover_interval=0", True, False, 0.9),
        ("3b. restarts/s, returns error, retry_interval=0", False, False, 0.9),
        ("3c. restarts/s, as 3a + no-op on_event hook", True, True, 0.9),
        ("3d. restarts/s, as 3b + no-op on_event hook", False, True, 0.9),
    ]
    rows = []
    for figure, raises, hook, factor in cases:
        contestants: list[Callable[[], float]] = [
            partial(supervised_rate, impl, seconds, raises=raises, hook=hook)
            for impl in context.impls
        ]
        contestants.append(partial(bare_rate, seconds, raises=raises))
        results = interleave(rounds, contestants)
        name = f"{figure} ({runs_label(rounds)})"
        rows += versus_baseline(context, name, results, at_least_times(factor, label), ",.0f")
        rows.append(Row(name, median(results[0]), median(results[-1]), "bare loop", fmt=",.0f"))
    # The same with N processes restarting at once: the supervisor's shared state (its
    # lock) and the GIL; the bare loops, one thread each, share only the GIL.
    for n in context.sizes.throughput_ns:
        for figure, raises in (("3a", True), ("3b", False)):
            contestants = [
                settled(partial(supervised_rate, impl, seconds, raises=raises, hook=False, n=n))
                for impl in context.impls
            ]
            contestants.append(settled(partial(bare_rate, seconds, raises=raises, n=n)))
            results = interleave(min(rounds, 3), contestants)
            label = runs_label(min(rounds, 3))
            name = f"{figure}. restarts/s, N={n:,} processes together ({label})"
            rows += versus_baseline(context, name, results, NO_TARGET, ",.0f")
            rows.append(
                Row(name, median(results[0]), median(results[-1]), "bare loops", fmt=",.0f")
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


def supervised_lateness(impl: Impl, interval: float, restarts: int) -> list[float]:
    timeline = Timeline(restarts)
    options = impl.option(recover_interval=interval, recover_count=HUGE_COUNT, is_fatal=False)
    sup = start_supervisor(impl, 1, timed_raising_process(timeline), options)
    try:
        if not timeline.done.wait(LONG):
            raise RuntimeError("the supervised process did not restart often enough")
    finally:
        stop_supervisor(sup)
    return timeline.lateness(interval)


def bare_lateness(interval: float, restarts: int) -> list[float]:
    timeline = Timeline(restarts)
    stop = threading.Event()
    thread = threading.Thread(
        target=bare_delay_loop,
        args=(stop, timed_raising_process(timeline), interval),
        daemon=True,
    )
    thread.start()
    try:
        if not timeline.done.wait(LONG):
            raise RuntimeError("the bare loop did not restart often enough")
    finally:
        stop.set()
        thread.join(LONG)
    return timeline.lateness(interval)


def bench_delay(context: Context) -> list[Row]:
    sizes = context.sizes
    interval, restarts, rounds = sizes.delay_interval, sizes.delay_restarts, sizes.delay_rounds
    # Each contestant's restarts are pooled over the rounds.
    pooled: list[list[float]] = [[] for _ in range(len(context.impls) + 1)]

    def contestant(index: int, impl: Impl | None) -> Callable[[], float]:
        def run() -> float:
            if impl is None:
                late = bare_lateness(interval, restarts)
            else:
                late = supervised_lateness(impl, interval, restarts)
            pooled[index] += [t * 1e3 for t in late]
            return 0.0

        return run

    contestants = [contestant(i, impl) for i, impl in enumerate(context.impls)]
    contestants.append(contestant(len(context.impls), None))
    interleave(rounds, contestants)
    label = f"recover_interval={interval * 1e3:g} ms, {restarts * rounds} restarts"
    median_label = f"4. restart lateness, median (ms; {label})"
    p99_label = f"4. restart lateness, p99 (ms; {label})"
    rows = [Row(median_label, median(pooled[0]), median(pooled[-1]), "bare", at_most(1.0, "ms"))]
    rows += versus_baseline(context, median_label, pooled, at_most(1.0, "ms"), ",.3f")
    rows.append(Row(p99_label, p99(pooled[0]), p99(pooled[-1]), "bare"))
    if context.baseline.impl is not None:
        rows.append(Row(p99_label, p99(pooled[0]), p99(pooled[1]), context.baseline.label))
    return rows


# ---------------------------------------------------------------------------
# 5. Idle cost


def idle_cpu(seconds: float) -> float:
    """CPU seconds the whole process uses while the main thread sleeps ``seconds``."""
    time.sleep(0.05)  # let the threads that just entered settle in their wait
    cpu_before = time.process_time()
    time.sleep(seconds)
    return time.process_time() - cpu_before


def idle_supervised(impl: Impl, n: int, seconds: float) -> float:
    gate = EntryGate(n)
    sup = start_supervisor(impl, n, cooperative(gate))
    try:
        gate.wait()
        return idle_cpu(seconds)
    finally:
        stop_supervisor(sup)


def idle_bare(n: int, seconds: float) -> float:
    gate = EntryGate(n)
    events, threads = start_bare(n, gate)
    try:
        gate.wait()
        return idle_cpu(seconds)
    finally:
        release_bare(events, threads)


def bench_idle(context: Context) -> list[Row]:
    sizes = context.sizes
    n, seconds, rounds = sizes.idle_n, sizes.idle_seconds, sizes.idle_rounds
    contestants = [settled(partial(idle_supervised, impl, n, seconds)) for impl in context.impls]
    contestants.append(settled(partial(idle_bare, n, seconds)))
    results = [[cpu * 1e3 for cpu in cpus] for cpus in interleave(rounds, contestants)]
    label = f"5. idle CPU, N={n:,} for {seconds:g} s (CPU ms, {runs_label(rounds)})"
    rows = [Row(label, median(results[0]), median(results[-1]), "bare", same_as("bare", 10, "ms"))]
    rows += versus_baseline(context, label, results, NO_TARGET, ",.3f")
    return rows


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


def bench_import(context: Context) -> list[Row]:
    # Each supervisor.py (this one, and the baseline's) is copied into two scratch
    # directories, so that neither the repository nor PYTHONDONTWRITEBYTECODE (set in some
    # environments) decides whether a .pyc exists: "cached" imports it from a .pyc, as an
    # installed copy is, and "from source" compiles it on every import (-B, no
    # __pycache__). The standard library, threading included, comes from its own .pyc
    # files in all of them.
    sources = [(ROOT / "supervisor.py").read_bytes()]
    if context.baseline.impl is not None and context.baseline.source is not None:
        sources.append(context.baseline.source)
    repeats = context.sizes.import_repeats
    with tempfile.TemporaryDirectory() as scratch:
        pairs: list[tuple[Path, Path]] = []
        for index, source in enumerate(sources):
            cached, uncached = Path(scratch, f"cached{index}"), Path(scratch, f"source{index}")
            for directory in (cached, uncached):
                directory.mkdir()
                (directory / "supervisor.py").write_bytes(source)
            import_time("supervisor", cached, write_bytecode=True)  # writes the .pyc
            if not list((cached / "__pycache__").glob("supervisor.*.pyc")):
                raise RuntimeError("python did not write supervisor's .pyc")
            pairs.append((cached, uncached))
        warm: list[list[tuple[int, int]]] = [[] for _ in pairs]
        cold: list[list[tuple[int, int]]] = [[] for _ in pairs]
        bare: list[tuple[int, int]] = []
        for _ in range(repeats):
            for index, (cached, uncached) in enumerate(pairs):
                warm[index].append(import_time("supervisor", cached, write_bytecode=True))
                cold[index].append(import_time("supervisor", uncached, write_bytecode=False))
            bare.append(import_time("threading", pairs[0][0], write_bytecode=True))

    def med(runs: list[tuple[int, int]], index: int) -> float:
        return median([run[index] for run in runs])

    label = context.baseline.label
    self_label = f"6. import supervisor, self, .pyc cached (us, {runs_label(repeats)})"
    cumulative_label = "6. import supervisor, cumulative, .pyc cached (us)"
    source_label = "6. import supervisor, self, compiled from source (us)"
    rows = [Row(self_label, med(warm[0], 0), med(bare, 0), "threading", fmt=",.0f")]
    if len(pairs) > 1:
        rows.append(Row(self_label, med(warm[0], 0), med(warm[1], 0), label, fmt=",.0f"))
    rows.append(Row(cumulative_label, med(warm[0], 1), med(bare, 1), "threading", fmt=",.0f"))
    rows.append(Row(source_label, med(cold[0], 0), med(bare, 0), "threading", fmt=",.0f"))
    if len(pairs) > 1:
        rows.append(Row(source_label, med(cold[0], 0), med(cold[1], 0), label, fmt=",.0f"))
    return rows


# ---------------------------------------------------------------------------
# 7. status() cost


class PlainRecord:
    """The tuple-copy baseline's record: a plain object with status()'s eight fields."""

    def __init__(self, name: str, state: object, thread_name: str) -> None:
        self.name = name
        self.state = state
        self.attempt = 1
        self.recovered_num = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.since = time.monotonic()
        self.thread_name = thread_name


class TupleCopy:
    """The status() baseline: the same eight fields of each record, copied as a tuple
    under a threading.Lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[PlainRecord] = []

    def grow(self, n: int) -> None:
        lifecycle = getattr(THIS.module, "ProcessLifecycle", None)
        state = getattr(lifecycle, "RUNNING", "running")
        with self.lock:
            for i in range(len(self.records), n):
                self.records.append(PlainRecord(f"p{i}", state, f"p{i}"))

    def snapshot(self) -> list[tuple[object, ...]]:
        with self.lock:
            return [
                (
                    r.name,
                    r.state,
                    r.attempt,
                    r.recovered_num,
                    r.restarts,
                    r.last_error,
                    r.since,
                    r.thread_name,
                )
                for r in self.records
            ]


class GrowingSupervisor:
    """A started supervisor whose cooperative processes are added up to a given count."""

    def __init__(self, impl: Impl) -> None:
        self.sup = impl.supervisor()
        self.count = 0
        self.started = False

    def grow(self, n: int) -> None:
        gate = EntryGate(n - self.count)
        process = cooperative(gate)
        for i in range(self.count, n):
            self.sup.register(f"p{i}", process)  # once started, it starts at once
        if not self.started:
            self.sup.start()
            self.started = True
        gate.wait()
        self.count = n
        if len(self.sup.status()) != n:
            raise RuntimeError(f"status() did not list the {n} processes")


def time_call(function: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        began = perf_counter()
        function()
        return perf_counter() - began

    return timed


def bench_status(context: Context) -> list[Row]:
    sizes = context.sizes
    calls = sizes.status_calls
    threads_before = threading.active_count()
    supervisors = [GrowingSupervisor(impl) for impl in context.impls]
    copy = TupleCopy()
    rows = []
    try:
        for n in sizes.status_ns:
            for grower in supervisors:
                grower.grow(n)
            copy.grow(n)
            contestants = [time_call(grower.sup.status) for grower in supervisors]
            contestants.append(time_call(copy.snapshot))
            results = [[t * 1e3 for t in times] for times in interleave(calls, contestants)]
            label = f"7. status(), N={n:,} (ms, median of {calls})"
            rows.append(Row(label, median(results[0]), median(results[-1]), "tuples"))
            target = at_most_times(1.1, context.baseline.label) if n >= 10_000 else NO_TARGET
            rows += versus_baseline(context, label, results, target, ",.3f")
    finally:
        for grower in supervisors:
            if grower.started:
                stop_supervisor(grower.sup)
    settle_threads(threads_before)
    return rows


# ---------------------------------------------------------------------------
# 9. heartbeat() cost, and 10. idle CPU of processes that beat (issue #13, planned)


def heartbeat_function(impl: Impl) -> Callable[[], object] | None:
    beat = getattr(impl.module, "heartbeat", None)
    return cast("Callable[[], object]", beat) if callable(beat) else None


def heartbeat_options(impl: Impl, timeout: float) -> ProcessOption | None:
    """ProcessOption(heartbeat_timeout=timeout, is_fatal=False), or None if the module's
    ProcessOption has no such field."""
    try:
        return impl.option(heartbeat_timeout=timeout, is_fatal=False)
    except TypeError:
        return None


def ns_per_call(function: Callable[[], object], calls: int) -> float:
    began = perf_counter_ns()
    for _ in range(calls):
        function()
    return (perf_counter_ns() - began) / calls


def beat_against_noop(
    beat: Callable[[], object], calls: int, rounds: int
) -> tuple[list[float], list[float]]:
    """ns per call of ``beat`` and of ``noop``, in interleaved rounds."""
    beats, noops = interleave(
        rounds, [lambda: ns_per_call(beat, calls), lambda: ns_per_call(noop, calls)]
    )
    return beats, noops


def beat_in_process(
    impl: Impl, beat: Callable[[], object], calls: int, rounds: int
) -> tuple[list[float], list[float]]:
    """beat_against_noop() run inside a supervised process (with heartbeat_timeout if the
    module has it)."""
    outcome: queue.SimpleQueue[tuple[list[float], list[float]] | BaseException] = (
        queue.SimpleQueue()
    )

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        try:
            outcome.put(beat_against_noop(beat, calls, rounds))
        except Exception as exc:
            outcome.put(exc)
        finish_signal.wait()
        return None

    options = heartbeat_options(impl, LONG) or impl.option(is_fatal=False)
    sup = start_supervisor(impl, 1, process, options)
    try:
        result = outcome.get(timeout=LONG)
    finally:
        stop_supervisor(sup)
    if isinstance(result, BaseException):
        raise result
    return result


def bench_heartbeat(context: Context) -> list[Row]:
    sizes = context.sizes
    calls, rounds = sizes.heartbeat_calls, sizes.heartbeat_rounds
    label = f"9. heartbeat() (ns per call, {runs_label(rounds)} of {calls:,} calls)"
    outside = f"{label[:-1]}; unsupervised thread)"
    inside = f"{label[:-1]}; in a process)"
    beat = heartbeat_function(THIS)
    if beat is None:
        return [unavailable(outside, "no-op call"), unavailable(inside, "no-op call")]
    rows = []
    try:
        beats, noops = beat_against_noop(beat, calls, rounds)
        rows.append(Row(outside, median(beats), median(noops), "no-op call", fmt=",.1f"))
    except Exception as exc:
        rows.append(unavailable(outside, "no-op call", f"raises {type(exc).__name__}"))
    try:
        beats, noops = beat_in_process(THIS, beat, calls, rounds)
        rows.append(Row(inside, median(beats), median(noops), "no-op call", fmt=",.1f"))
    except Exception as exc:
        rows.append(unavailable(inside, "no-op call", f"raises {type(exc).__name__}"))
    return rows


def beating_process(gate: EntryGate, beat: Callable[[], object] | None) -> ProcessFunc:
    """A process that wakes once a second and beats (``beat`` None: only wakes)."""

    def process(
        finish_signal: threading.Event, process_name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        gate.enter()
        while not finish_signal.wait(1.0):
            if beat is not None:
                beat()
        return None

    return process


def idle_beating(impl: Impl, n: int, seconds: float, *, beats: bool) -> float:
    gate = EntryGate(n)
    beat = heartbeat_function(impl) if beats else None
    options = heartbeat_options(impl, 5.0) if beats else impl.option(is_fatal=False)
    sup = start_supervisor(impl, n, beating_process(gate, beat), options)
    try:
        gate.wait()
        return idle_cpu(seconds)
    finally:
        stop_supervisor(sup)


def bare_waking(gate: EntryGate, event: threading.Event) -> None:
    gate.enter()
    while not event.wait(1.0):
        noop()


def idle_bare_waking(n: int, seconds: float) -> float:
    gate = EntryGate(n)
    events = [threading.Event() for _ in range(n)]
    threads = [
        threading.Thread(target=bare_waking, args=(gate, event), daemon=True) for event in events
    ]
    for thread in threads:
        thread.start()
    try:
        gate.wait()
        return idle_cpu(seconds)
    finally:
        release_bare(events, threads)


def bench_beat_idle(context: Context) -> list[Row]:
    sizes = context.sizes
    n, seconds, rounds = sizes.beat_n, sizes.beat_seconds, sizes.beat_rounds
    label = (
        f"10. idle CPU, N={n:,} beating 1/s, heartbeat_timeout=5 s, for {seconds:g} s "
        f"(CPU ms, {runs_label(rounds)})"
    )
    if heartbeat_function(THIS) is None or heartbeat_options(THIS, 5.0) is None:
        return [unavailable(label, "no beats"), unavailable(label, "bare 1/s")]
    contestants = [
        settled(lambda: idle_beating(THIS, n, seconds, beats=True)),
        settled(lambda: idle_beating(THIS, n, seconds, beats=False)),
        settled(lambda: idle_bare_waking(n, seconds)),
    ]
    results = [[cpu * 1e3 for cpu in cpus] for cpus in interleave(rounds, contestants)]
    return [
        Row(label, median(results[0]), median(results[1]), "no beats"),
        Row(label, median(results[0]), median(results[2]), "bare 1/s"),
    ]


# ---------------------------------------------------------------------------
# The table


FIGURES: dict[int, tuple[str, Callable[[Context], list[Row]]]] = {
    1: ("shutdown latency", bench_shutdown),
    2: ("start-up at scale", bench_startup),
    3: ("restart throughput", bench_throughput),
    4: ("restart delay accuracy", bench_delay),
    5: ("idle cost", bench_idle),
    6: ("import time", bench_import),
    7: ("status() cost", bench_status),
    8: ("shutdown of processes slow to finish", bench_slow_shutdown),
    9: ("heartbeat() cost", bench_heartbeat),
    10: ("idle cost of heartbeats", bench_beat_idle),
}

BASELINES = """\
Baselines ("vs"), each measured in the same run, in interleaved rounds:
  REV        the baseline module (--baseline REV): supervisor.py at that commit, imported under
             another name into this interpreter; same figure, same sizes.
  bare       1, 8: N threads each waiting on its own Event; set every Event, then join every
             thread. 2: N bare threads started the same way (Events made before the clock
             starts, as register() makes finish signals; Threads made and started inside it);
             each start-up case runs in a fresh interpreter of this script (--case), and all
             load the same modules, so the ratio is the per-process cost; peak RSS is VmHWM
             (ru_maxrss off Linux). 4: one thread, try/except around the same process function,
             then Event.wait(interval). 5: N idle threads; CPU is time.process_time() of the
             whole process.
  1-by-1     1: the same bare threads, but set one Event and join its thread before the next.
  bare loop  3: one thread calling the same process function in a loop: try/except for 3a and
             3c, a check of the returned error for 3b and 3d; no supervisor. "bare loops": N
             such threads at once.
  threading  6: `python -X importtime -c "import threading"` (self and cumulative, from its
             .pyc); supervisor is imported from a scratch copy, from a .pyc ("cached") and
             compiled from source on each import (python -B).
  tuples     7: a list of plain objects with status()'s eight fields, copied as tuples under a
             threading.Lock.
  no-op call 9: a call of an empty Python function, timed the same way.
  no beats   10: the same processes waking once a second without heartbeat_timeout or beats.
  bare 1/s   10: N bare threads looping on Event.wait(1.0) and a no-op call.
Ratio = this module / baseline. Verdicts are information only: nothing here asserts on a timing."""


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the repository root, or only its name if it lies outside:
    never an absolute path."""
    absolute = Path(os.path.abspath(path))
    for root in (ROOT, Path(os.path.abspath(ROOT))):
        try:
            return str(absolute.relative_to(root))
        except ValueError:
            continue
    return absolute.name


def header(argv: Sequence[str], sizes: Sizes, baseline: Baseline) -> dict[str, str]:
    cpus = os.cpu_count()
    implementation = platform.python_implementation()
    script = display_path(argv[0]) if argv else "benchmarks/bench_supervisor.py"
    this_file = display_path(supervisor.__file__)
    if baseline.impl is not None:
        base = f"supervisor {baseline.impl.version} ({baseline.note})"
    else:
        base = (
            f"{baseline.revision}: not available, {baseline.note}; "
            "the comparisons with it are skipped"
        )
    return {
        "command": shlex.join([display_path(sys.executable), script, *argv[1:]]),
        "machine": f"{platform.platform()}, {platform.machine()}, {cpus} CPUs",
        "python": f"{implementation} {platform.python_version()} ({display_path(sys.executable)})",
        "module": f"supervisor {THIS.version} ({this_file}){git_revision()}",
        "baseline": base,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load": f"{load_average()} (1, 5, 15 min; other work on the machine skews timings)",
        "sizes": f"{sizes.name}; logging disabled in every figure",
    }


def load_average() -> str:
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "unknown"


def git_revision() -> str:
    """ ", git abc1234" (", modified" if supervisor.py differs from it), or "" outside git."""
    try:
        revision = git("rev-parse", "--short", "HEAD").stdout.decode().strip()
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
    headings = ("figure", "this module", "baseline", "vs", "ratio", "target", "verdict")
    cells = [
        (
            row.figure,
            row.cell(row.value),
            row.cell(row.base),
            row.vs,
            row.ratio,
            row.target.text,
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [headings, *cells]) for i in range(len(headings))]

    def render(line: Sequence[str], previous: Sequence[str] | None) -> str:
        # A figure repeated on the next line (another baseline) is shown once.
        first = "" if previous is not None and previous[0] == line[0] else line[0]
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(line[1:3], widths[1:3], strict=True)]
        parts += [line[3].ljust(widths[3]), line[4].rjust(widths[4])]
        parts += [line[5].ljust(widths[5]), line[6]]
        return "  ".join(parts).rstrip()

    rule = "-" * len(render(headings, None))
    body = [render(line, cells[i - 1] if i else None) for i, line in enumerate(cells)]
    return "\n".join([render(headings, None), rule, *body])


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
        "--baseline",
        default=DEFAULT_BASELINE,
        metavar="REV",
        help=f"git revision of the baseline module (default: {DEFAULT_BASELINE}; 'none': none)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the header and rows to FILE"
    )
    parser.add_argument(
        "--case",
        choices=tuple(f"startup-{kind}" for kind in STARTUP_KINDS),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--n", type=int, default=FULL.startup_n, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-file", help=argparse.SUPPRESS)
    args = parser.parse_args(arguments[1:])
    logging.disable(logging.CRITICAL)

    if args.case is not None:
        kind = args.case.removeprefix("startup-")
        print(json.dumps(startup_case(kind, args.n, args.baseline_file)))
        return 0

    sizes = QUICK if args.quick else FULL
    baseline = load_baseline(args.baseline)
    context = Context(sizes, baseline)
    fields = header(arguments, sizes, baseline)
    print("supervisor.py benchmarks: this module against bare threads and the baseline module")
    for key, value in fields.items():
        print(f"{key + ':':<10}{value}")
    print(flush=True)
    rows: list[Row] = []
    began = perf_counter()
    for number in args.figures:
        name, bench = FIGURES[number]
        figure_began = perf_counter()
        rows.extend(bench(context))
        elapsed = perf_counter() - figure_began
        print(f"  ran {number}. {name} in {elapsed:.1f} s", file=sys.stderr, flush=True)
    total = perf_counter() - began
    print(table(rows))
    print()
    print(BASELINES.replace("REV       ", f"{baseline.label:<10}", 1))
    print(f"\ntotal time: {total:.1f} s; load at the end: {load_average()}")
    if args.json is not None:
        record = {**fields, "total_seconds": total, "rows": [row.record() for row in rows]}
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"record written to {display_path(args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
