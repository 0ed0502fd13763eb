"""A person's data: erasure (the right to be forgotten), and many profiles merged at once (imports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from temporalio.client import Client

from flowline.journey import StopRequest
from flowline.store import attribute_types, erasure, profile_batches, profiles
from flowline.store.attribute_types import attribute_faults, email_fault
from flowline.store.database import Store
from flowline.store.events import insert_fresh_events
from flowline.store.profile_batches import BatchEntry, Match
from launch.routing import JourneyLauncher
from launch.signals import SignalNotTaken, signal_journey
from services.errors import NotFound, TemporalUnavailable
from workflows.journey import JourneyWorkflow

# The reason the person's journeys in flight end with.
ERASED = "profile erased"


async def erase_person(store: Store, temporal: Client, workspace_id: str, profile_id: str) -> None:
    """Stop every running journey of the person (reason ``profile erased``), then delete the
    profile, its events, inbox messages, conversations, friendships (both ways) and push tokens
    in one transaction. Journey records and deliveries stay as ids only, for flow statistics.
    Raises NotFound, TemporalUnavailable (a stop not taken: nothing was deleted)."""
    async with store.connect() as conn:
        if await profiles.get_profile(conn, workspace_id, profile_id) is None:
            raise NotFound(f"no profile {profile_id!r}")
        running = await erasure.running_journeys(conn, workspace_id, profile_id)
    for journey_id in running:
        try:
            # A journey that has ended already needs no stop.
            await signal_journey(temporal, journey_id, JourneyWorkflow.stop, StopRequest(reason=ERASED))
        except SignalNotTaken as error:
            raise TemporalUnavailable(
                f"Temporal did not take the stop ({error.error}); nothing was deleted, send it again"
            ) from error
    async with store.begin() as conn:
        if not await erasure.erase_profile(conn, workspace_id, profile_id):
            raise NotFound(f"no profile {profile_id!r}")


# ---------------------------------------------------------------- many profiles at once (imports)

Blank = Literal["ignore", "clear"]


@dataclass
class ProfileOutcome:
    """What became of one entry of a batch: created, updated, unchanged, or rejected with the
    faults (path, message) that say why (nothing of it written)."""

    index: int
    profile_id: str | None
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    faults: list[tuple[str, str]] = field(default_factory=list)


def _with_blanks(attributes: dict[str, Any], blank: Blank) -> dict[str, Any]:
    """A blank value (an empty or all-space string, as an empty CSV cell arrives): ``ignore``
    keeps what is stored, ``clear`` erases it. null erases, as in any merge."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if isinstance(value, str) and not value.strip():
            if blank == "clear":
                out[name] = None
        else:
            out[name] = value
    return out


def _entry_faults(
    path: str, entry: BatchEntry, declared: dict[str, str], match: Match, max_attributes: int
) -> list[tuple[str, str]]:
    faults: list[tuple[str, str]] = []
    if match == "id" and entry.profile_id is None:
        faults.append((f"{path}.id", "required when profiles are matched by id"))
    email = entry.attributes.get("email")
    if match == "email" and email is None:
        faults.append((f"{path}.attributes.email", "required when profiles are matched by email"))
    elif email is not None and (why := email_fault(email)) is not None:
        faults.append((f"{path}.attributes.email", why))
    if len(entry.attributes) > max_attributes:
        faults.append((f"{path}.attributes", f"{len(entry.attributes)} attributes; at most {max_attributes}"))
    faults += attribute_faults(declared, entry.attributes, f"{path}.attributes")
    return faults


async def merge_profiles(
    store: Store,
    launcher: JourneyLauncher,
    workspace_id: str,
    entries: Sequence[tuple[int, BatchEntry]],
    *,
    match: Match = "id",
    blank: Blank = "ignore",
    dry_run: bool = False,
    triggers: bool = True,
    max_attributes: int = 500,
    path: str = "$.profiles",
) -> list[ProfileOutcome]:
    """Merge a batch of profiles (an import) in one transaction: each entry (its index in the
    request, its id and attributes) checked against the declared attributes, the email check and
    the limits; the invalid ones rejected with the path of each fault and nothing of them
    written, the valid ones stored with bulk statements (flowline.store.profile_batches).
    ``triggers``: after the commit the changes are routed behind the caller (their
    profile_change flows start, waiting journeys hear), without it no profile_changed event is
    recorded. ``dry_run``: the same outcomes, nothing written."""
    outcomes: list[ProfileOutcome] = []
    valid: list[tuple[int, BatchEntry]] = []
    async with store.begin() as conn:
        declared = await attribute_types.declared_types(conn, workspace_id)
        for index, entry in entries:
            entry = BatchEntry(entry.profile_id, _with_blanks(entry.attributes, blank))
            faults = _entry_faults(f"{path}[{index}]", entry, declared, match, max_attributes)
            if faults:
                outcomes.append(ProfileOutcome(index, entry.profile_id, "rejected", faults))
            else:
                valid.append((index, entry))
        results = await profile_batches.merge_batch(
            store, conn, workspace_id, [e for _, e in valid], match=match, write=not dry_run
        )
        unquiet: set[str] = set()
        if triggers and not dry_run:
            # Changes no flow and no journey in flight concerns are stored routed (most of an
            # import); the others are routed behind the answer.
            rows = profile_batches.change_events(results)
            quiet = await launcher.quiet(conn, workspace_id, rows)
            await insert_fresh_events(store, conn, workspace_id, rows, routed=quiet)
            unquiet = {r["profile_id"] for r in rows if r["id"] not in quiet}
    outcomes += [
        ProfileOutcome(index, result.profile_id, result.outcome)
        for (index, _), result in zip(valid, results, strict=True)
    ]
    if triggers and not dry_run:
        changed = {r.profile_id for r in results if r.changed}
        launcher.behind.add(workspace_id, sorted(unquiet))
        # The others' changes were stored routed: only their segments are re-evaluated.
        launcher.behind.add(workspace_id, sorted(changed - unquiet), routed=True)
    return sorted(outcomes, key=lambda o: o.index)
