"""Every stored secret (channel settings, destinations, the credential headers of custom
elements), counted by the key it is sealed under and sealed again under the newest key
(``flowline reencrypt-secrets``, docs/secrets.md): what a key rotation runs once the new key is
first in ``FLOWLINE_PAYLOAD_KEYS`` everywhere, and what seals the secrets stored in clear before
encryption (or while no key was configured)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.destinations.settings import SECRET_FIELDS
from flowline.secret_box import SecretBox, SecretKeyError, sealed_key
from flowline.store.database import Store
from flowline.store.destinations import seal_settings
from flowline.store.elements import definition_secrets, seal_definition
from flowline.store.tables import destinations, element_versions, workspaces
from flowline.store.workspaces import channel_secrets, seal_channels

CLEAR = "(in clear)"


@dataclass
class SecretsReport:
    """Secrets found, per the key they were sealed under (``CLEAR`` for none), and what was
    sealed again under the newest key."""

    key_id: str | None
    found: Counter[str] = field(default_factory=Counter)
    resealed_secrets: int = 0
    resealed_rows: int = 0

    @property
    def stale(self) -> int:
        """Secrets found in clear or under another key than the newest."""
        return sum(n for key, n in self.found.items() if key != self.key_id)


def _count(report: SecretsReport, values: list[Any]) -> list[Any]:
    for value in values:
        report.found[sealed_key(value) or CLEAR] += 1
    return values


def _destination_secrets(kind: str, stored: Mapping[str, Any]) -> list[Any]:
    return [stored[name] for name in SECRET_FIELDS.get(kind, ()) if stored.get(name) is not None]


def _locked(store: Store, query: Select[Any]) -> Select[Any]:
    # PostgreSQL: the row stays as read until written back (a PUT meanwhile waits, then wins).
    # SQLite has one writer: the transaction's read and write cannot be interleaved.
    return query.with_for_update() if store.dialect == "postgresql" else query


async def reseal_secrets(store: Store, *, check: bool = False) -> SecretsReport:
    """Seal every stored secret not yet under ``store``'s newest key (``check``: count only).
    One short transaction per row; a row no configured key opens raises SecretKeyError naming it,
    and leaves the rows already done sealed."""
    box = store.secrets
    if not box.seals and not check:
        raise SecretKeyError("no payload key is configured (FLOWLINE_PAYLOAD_KEYS): nothing to seal with")
    report = SecretsReport(box.key_id)
    async with store.connect() as conn:
        workspace_ids = list(
            (await conn.execute(select(workspaces.c.id).where(workspaces.c.channels.is_not(None)))).scalars()
        )
        destination_ids = list(await conn.execute(select(destinations.c.workspace_id, destinations.c.id)))
        element_keys = list(
            await conn.execute(
                select(
                    element_versions.c.workspace_id, element_versions.c.element_id, element_versions.c.version
                )
            )
        )
    for workspace_id in workspace_ids:
        async with store.begin() as conn:
            await _reseal_channels(store, conn, box, report, workspace_id, check=check)
    for workspace_id, destination_id in destination_ids:
        async with store.begin() as conn:
            await _reseal_destination(store, conn, box, report, workspace_id, destination_id, check=check)
    for workspace_id, element_id, version in element_keys:
        async with store.begin() as conn:
            await _reseal_element(store, conn, box, report, (workspace_id, element_id, version), check=check)
    return report


async def _reseal_channels(
    store: Store,
    conn: AsyncConnection,
    box: SecretBox,
    report: SecretsReport,
    workspace_id: str,
    *,
    check: bool,
) -> None:
    query = _locked(store, select(workspaces.c.channels).where(workspaces.c.id == workspace_id))
    stored = await conn.scalar(query)
    stale = [v for v in _count(report, channel_secrets(stored)) if box.stale(v)]
    if check or not stale or not isinstance(stored, Mapping):
        return
    try:
        value = seal_channels(box, stored)
    except SecretKeyError as error:
        raise SecretKeyError(f"workspace {workspace_id!r}, channel settings: {error}") from error
    await conn.execute(workspaces.update().where(workspaces.c.id == workspace_id).values(channels=value))
    report.resealed_secrets += len(stale)
    report.resealed_rows += 1


async def _reseal_destination(
    store: Store,
    conn: AsyncConnection,
    box: SecretBox,
    report: SecretsReport,
    workspace_id: str,
    destination_id: str,
    *,
    check: bool,
) -> None:
    where = (destinations.c.workspace_id == workspace_id, destinations.c.id == destination_id)
    row = (
        await conn.execute(_locked(store, select(destinations.c.type, destinations.c.settings).where(*where)))
    ).first()
    if row is None:  # deleted meanwhile
        return
    kind, stored = row
    stale = [v for v in _count(report, _destination_secrets(kind, stored)) if box.stale(v)]
    if check or not stale:
        return
    try:
        value = seal_settings(box, kind, stored)
    except SecretKeyError as error:
        raise SecretKeyError(
            f"workspace {workspace_id!r}, destination {destination_id!r}: {error}"
        ) from error
    await conn.execute(destinations.update().where(*where).values(settings=value))
    report.resealed_secrets += len(stale)
    report.resealed_rows += 1


async def _reseal_element(
    store: Store,
    conn: AsyncConnection,
    box: SecretBox,
    report: SecretsReport,
    key: tuple[str, str, int],
    *,
    check: bool,
) -> None:
    """One version of a custom element: the values of its credential headers (a version is
    immutable; sealing it again changes how it is stored, not what it says)."""
    workspace_id, element_id, version = key
    where = (
        element_versions.c.workspace_id == workspace_id,
        element_versions.c.element_id == element_id,
        element_versions.c.version == version,
    )
    stored = await conn.scalar(_locked(store, select(element_versions.c.definition).where(*where)))
    if not isinstance(stored, Mapping):  # deleted meanwhile
        return
    stale = [v for v in _count(report, definition_secrets(stored)) if box.stale(v)]
    if check or not stale:
        return
    try:
        value = seal_definition(box, stored)
    except SecretKeyError as error:
        raise SecretKeyError(
            f"workspace {workspace_id!r}, element {element_id!r} v{version}: {error}"
        ) from error
    await conn.execute(element_versions.update().where(*where).values(definition=value))
    report.resealed_secrets += len(stale)
    report.resealed_rows += 1
