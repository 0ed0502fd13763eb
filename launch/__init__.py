"""The Temporal client side of journeys: what starts, signals, routes, schedules and encodes them.

It runs in the API, in activities and in the CLI, never inside a workflow, so it may do I/O
(the store, Temporal's client); the deterministic workflow code it starts is in ``workflows/``.
"""
