"""Temporal workflows: deterministic code only (the journey workflow and its interpreter, the
entry-run and segment-clock workflows); what starts, signals and schedules them is in launch/."""
