"""The flow language: what a flow document may say, and what it means.

- document.py: ``FlowDocument`` (a trigger, settings, steps); validation.py: ``parse_flow``,
  which turns what users write into one or faults with JSON paths.
- steps/: every step type, one module per family, and their union ``Step``.
- triggers.py (what starts a journey), trigger_match.py (which event does), date_moments.py
  (when a date trigger enters); flow_settings.py (re-entry, stop_when, goal, limits, variables).
- base.py (ids, times, zones, expressions), template_fields.py (which fields are Liquid
  templates, and their check), windows.py (delivery windows and rates).
- Pure meanings the interpreter calls: graph.py (where each branch leads), timing.py (when waits
  and windows end), event_waits.py, experiments.py (split assignment), variables.py.

Nothing here does I/O: workflow code imports these modules. The condition language (branch
rules, segments, trigger filters, event conditions) is flowline/conditions/.
"""
