"""The journey interpreter and its parts, one module each: the walk over the steps
(interpreter.py), the run's state (run_state.py), the signals (signals.py), the waits (waits.py),
the hand-over to a new run (handover.py), moves to a newer version (moves.py), the path records
(path_records.py), how step activities run (step_activities.py), and the send and call_api
steps' waits (sends.py, calls.py).

Deterministic workflow code: time from ``workflow.now()``, waiting from durable timers, every side
effect from an activity (called by reference, flowline/journey/contracts.py). A change that would
make a recorded history produce other commands sits behind a patch (workflows/patches.py)
(tests/test_replay.py replays every recorded history).
"""

from workflows.interpreter.interpreter import JourneyInterpreter

__all__ = ["JourneyInterpreter"]
