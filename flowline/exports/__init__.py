"""Export destinations' delivery: the batcher (batcher.py) and one adapter per destination type
(delivery.py). The outbox itself is flowline/store/export_records.py; what writes to it: export
steps (activities/exports.py) and exported events (flowline/store/event_exports.py)."""
