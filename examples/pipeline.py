"""A producer, a queue and two consumers under the "rest_for_one" strategy.

The producer reads items from a source and puts them on a queue; two consumers take them
off it. The consumers are registered after the producer, so under ``"rest_for_one"`` a
failure of the producer restarts them with it: they are told to finish (their finish
signal), the supervisor waits for them to return, and then all three run again. (A
failure of consumer-1 would restart consumer-2 with it; one of consumer-2, the last,
only itself.) Here the source fails once, after the third item; the producer is
retried, and the consumers restart with it. The queue outlives them all, so no item is
lost, and once every item has been consumed the program shuts itself down. Run it::

    python3 examples/pipeline.py              # 10 items, then it stops by itself
    python3 examples/pipeline.py --items 0    # nothing to do: runs until Ctrl-C or SIGTERM

The exit code is the report's: 0 when everything stopped gracefully.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
from pathlib import Path

# Prefer the supervisor.py of this repository (next to examples/) over any installed
# "supervisor" package: supervisord's package has the same import name.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "supervisor.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from supervisor import ProcessOption, Supervisor, TerminateChannel  # noqa: E402

FAIL_AFTER = 3  # the source fails once, after this item


def say(line: str) -> None:
    """Print one whole line at once (the processes print from their own threads)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Pipeline:
    """The shared state: the queue, the source's position and what was consumed."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.queue: queue.Queue[int] = queue.Queue()
        self.next_item = 1  # the source's position survives a restart of the producer
        self.failed_once = False
        self.consumed: list[int] = []
        self.runs: dict[str, int] = {}
        self.lock = threading.Lock()
        self.sup: Supervisor | None = None

    def begin(self, name: str) -> int:
        with self.lock:
            self.runs[name] = self.runs.get(name, 0) + 1
            return self.runs[name]

    def producer(
        self, finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        say(f"producer: run {self.begin(name)}")
        while self.next_item <= self.items and not finish_signal.is_set():
            if self.next_item > FAIL_AFTER and not self.failed_once:
                self.failed_once = True
                say(f"producer: the source failed after item {FAIL_AFTER}")
                return ConnectionError("the source went away")
            self.queue.put(self.next_item)
            self.next_item += 1
            finish_signal.wait(0.01)  # the source's pace
        finish_signal.wait()  # everything produced: wait to be told to finish
        return None

    def consumer(
        self, finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        say(f"{name}: run {self.begin(name)}")
        while not finish_signal.is_set():
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            with self.lock:
                self.consumed.append(item)
                done = len(self.consumed) == self.items
            if done and self.sup is not None:
                say(f"{name}: consumed the last item; asking for a shutdown")
                self.sup.shutdown()
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10, help="items to produce (0: none)")
    args = parser.parse_args(argv)
    # The supervisor's warnings and errors, one line each, on stdout.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("log: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])

    pipeline = Pipeline(args.items)
    sup = Supervisor(shutdown_timeout=2.0, strategy="rest_for_one")
    pipeline.sup = sup
    # reset_after: a run of ten seconds before a failure starts over with fresh counters,
    # so that a source that goes away now and then never uses up the producer's retries.
    fast = ProcessOption(retry_interval=0.05, recover_interval=0.05, reset_after=10.0)
    sup.register("producer", pipeline.producer, fast)  # first: its failure restarts the rest
    sup.register("consumer-1", pipeline.consumer, fast)
    sup.register("consumer-2", pipeline.consumer, fast)
    report = sup.run()  # start, then wait for the end, Ctrl-C or SIGTERM

    consumed = sorted(pipeline.consumed)
    each_once = consumed == list(range(1, args.items + 1))
    print(f"consumed {len(consumed)} items{', each once' if each_once else ''}")
    print("runs: " + ", ".join(f"{name} {count}" for name, count in pipeline.runs.items()))
    print(f"report: {report.reason}; exit code {int(report.exit_code)}")
    return int(report.exit_code)


if __name__ == "__main__":
    raise SystemExit(main())
