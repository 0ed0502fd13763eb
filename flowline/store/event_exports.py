"""Events exported as they are stored: a destination's ``events`` (exported as they are, for
example flow_entered and flow_exited) and a CleverTap destination's ``referral_events`` (exported
as GetSocial's pair: ``Referred <Name>`` for the person, ``Generated <Name>`` for their referrer).

Every place that stores events calls ``export_events`` in the same transaction, so an event and
its export records commit together, and a retried transaction writes them once (keyed by the
event's id). Which events a workspace exports is read from its destinations and kept for
``RULES_SECONDS`` per process; saving a destination forgets it in the process that saved, and
others see the change within that time (docs/destinations/README.md#exported-events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.destinations.clevertap import referral_event_names
from flowline.store import destinations, profiles
from flowline.store.export_records import NewRecord, add_records
from flowline.ttl_cache import TtlCache

RULES_SECONDS = 5.0
# The properties of a referral event, as GetSocial sends them (its seed), from the event's own.
REFERRAL_PROPERTIES = {"Channel": "channel", "Content": "content", "Status": "status"}


@dataclass(frozen=True)
class EventRules:
    # event name -> the destinations that export it as it is / as a referral pair
    as_is: dict[str, list[str]] = field(default_factory=dict)
    referral: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.as_is or self.referral)


_rules: TtlCache[tuple[str, str], EventRules] = TtlCache(RULES_SECONDS)


def _key(conn: AsyncConnection, workspace_id: str) -> tuple[str, str]:
    # Per database as well: tests (and a process serving two stores) must not share rules.
    return (str(conn.engine.url), workspace_id)


def forget(conn: AsyncConnection, workspace_id: str) -> None:
    """Call after a destination of the workspace changed: this process reads its rules again."""
    _rules.invalidate(_key(conn, workspace_id))


async def rules_for(conn: AsyncConnection, workspace_id: str) -> EventRules:
    key = _key(conn, workspace_id)
    cached = _rules.get(key)
    if cached is not None:
        return cached
    rules = EventRules()
    for stored in await destinations.list_destinations(conn, workspace_id):
        for name in stored.settings.events:
            rules.as_is.setdefault(name, []).append(stored.destination_id)
        for name in getattr(stored.settings, "referral_events", ()):
            rules.referral.setdefault(name, []).append(stored.destination_id)
    _rules.put(key, rules)
    return rules


def referral_pair(base: NewRecord, *, event_name: str, referrer_id: str) -> list[NewRecord]:
    """``Referred <Name>`` for ``base``'s person and ``Generated <Name>`` for their referrer: two
    copies of ``base`` (its key, time, data and origin) under those names."""
    referred, generated = referral_event_names(event_name)
    return [
        replace(base, record_key=f"{base.record_key}:referred", kind="event", name=referred),
        replace(
            base,
            record_key=f"{base.record_key}:generated",
            kind="event",
            name=generated,
            profile_id=referrer_id,
        ),
    ]


async def export_events(conn: AsyncConnection, workspace_id: str, rows: Sequence[dict[str, Any]]) -> int:
    """Write the export records of events stored now in this transaction (rows: ``id``,
    ``profile_id``, ``name``, ``timestamp``, ``properties``); returns how many were new. Costs a
    cache lookup when the workspace exports no event."""
    if not rows:
        return 0
    rules = await rules_for(conn, workspace_id)
    if not rules:
        return 0
    records: list[NewRecord] = []
    referrers: dict[str, str | None] = {}
    for row in rows:
        name = row["name"]
        properties = row.get("properties") or {}
        for destination_id in rules.as_is.get(name, ()):
            records.append(
                NewRecord(
                    destination_id,
                    f"event:{row['id']}",
                    row["profile_id"],
                    "event",
                    name,
                    row["timestamp"],
                    dict(properties),
                )
            )
        targets = rules.referral.get(name, ())
        if not targets:
            continue
        person = row["profile_id"]
        if person not in referrers:
            referrers[person] = await profiles.referrer_of(conn, workspace_id, person)
        referrer = referrers[person]
        if referrer is None:
            continue  # nobody referred this person: no pair
        data = {shown: properties[own] for shown, own in REFERRAL_PROPERTIES.items() if own in properties}
        for destination_id in targets:
            base = NewRecord(
                destination_id, f"event:{row['id']}", person, "event", name, row["timestamp"], data
            )
            records += referral_pair(base, event_name=name, referrer_id=referrer)
    return await add_records(conn, workspace_id, records)
