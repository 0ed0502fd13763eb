"""Flowline's domain core: the flow language, conditions, the store, channels and time.

Nothing in this package imports FastAPI or Temporal's worker machinery, so workflows,
activities, the API and the CLI can all share it (workflows import it through the sandbox).
"""
