"""Events: an ``on_event`` hook receives a typed, frozen event for everything that happens.

``job`` returns an error (a retry), then raises (a recovery), then raises ``DoNotRestart``
to end itself for good. The hook prints every event, and when ``job`` has stopped it
calls ``shutdown()``, which stops ``ticker`` gracefully. Run it::

    python3 examples/events.py
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "supervisor.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from supervisor import (  # noqa: E402
    DoNotRestart,
    GroupRestart,
    ProcessFailed,
    ProcessGaveUp,
    ProcessOption,
    ProcessStalled,
    ProcessStarted,
    ProcessStopped,
    ProcessWaiting,
    ShutdownFinished,
    ShutdownStarted,
    Supervisor,
    SupervisorEvent,
    TerminateChannel,
)


def describe(event: SupervisorEvent) -> str:
    """One line per event; ``match`` sees every field of these frozen dataclasses."""
    match event:
        case ProcessStarted(process_name=name, attempt=attempt):
            return f"{name}: started, attempt {attempt}"
        case ProcessFailed(process_name=name, attempt=attempt, error=error, panic=panic):
            how = "raised" if panic else "returned"
            return f"{name}: attempt {attempt} {how} {error!r}"
        case ProcessWaiting(process_name=name, delay=delay, kind=kind):
            return f"{name}: waiting {delay:.2f} s to {kind}"
        case ProcessGaveUp(process_name=name, error=error, fatal=fatal):
            return f"{name}: gave up after {error!r}" + (" (fatal)" if fatal else "")
        case ProcessStopped(process_name=name, state=state, error=error):
            why = "" if error is None else f" because of {error!r}"
            return f"{name}: stopped, now {state.value}{why}"
        case GroupRestart(process_name=name, restarting=restarting):
            return f"{name}: failed; restarting {', '.join(restarting)} with it"
        case ProcessStalled(process_name=name, silent_for=silent_for):
            return f"{name}: stalled, no heartbeat for {silent_for:.1f} s"
        case ShutdownStarted(reason=reason, cause=cause):
            return f"shutdown started ({cause.value}): {reason}"
        case ShutdownFinished(report=report):
            return f"shutdown finished in {report.duration:.3f} s, exit code {report.exit_code}"
    return repr(event)  # an event type added after this example


def main() -> int:
    logging.getLogger("supervisor").setLevel(logging.CRITICAL)  # the events tell it all
    runs = 0

    def job(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        nonlocal runs
        runs += 1
        if runs == 1:
            return TimeoutError("the queue did not answer")  # an error: retried
        if runs == 2:
            raise KeyError("a malformed message")  # a crash: recovered
        raise DoNotRestart("the queue was deleted; nothing left to do")  # ends it for good

    def ticker(
        finish_signal: threading.Event, name: str, terminate_channel: TerminateChannel
    ) -> Exception | None:
        finish_signal.wait()
        return None

    def on_event(event: SupervisorEvent) -> None:
        # Called outside the supervisor's lock, on the thread where the event happened;
        # an exception here is logged and ignored.
        print(describe(event), flush=True)
        if isinstance(event, ProcessStopped) and event.process_name == "job":
            sup.shutdown()

    sup = Supervisor(on_event=on_event)
    # The job's waits are short; is_fatal=False is not needed: DoNotRestart never is fatal.
    sup.register("job", job, ProcessOption(retry_interval=0.05, recover_interval=0.05))
    sup.register("ticker", ticker)
    report = sup.run()  # start(), then wait for a shutdown: here, the one the hook asks for

    print("status() after the shutdown:")
    for name, status in sup.status().items():
        print(f"  {name}: {status.state.value}, {status.restarts} restarts, {status.last_error}")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
