"""API keys (docs/keys.md): create (the secret is shown once), list, revoke, and the check of the
key every request makes.

The check reads the key's row by the hash of the secret on every request (a unique index; no
cache), so a key revoked through any process is refused by every process from its next request.
The last use is written at most once per ``USE_RESOLUTION`` per key: the row read says when it
was last written, and each process remembers when it last wrote, so a busy key costs one small
UPDATE a minute, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from flowline.store import api_keys, workspaces
from flowline.store.api_keys import CreatedKey, KeyRecord, Scope
from flowline.store.database import Store, utcnow
from services.errors import NotFound, Refused

log = logging.getLogger("flowline.api_keys")
USE_RESOLUTION = timedelta(seconds=60)


async def create_key(
    store: Store, workspace_id: str, name: str, scope: Scope, *, create_workspace: bool = False
) -> CreatedKey:
    """A new key of the workspace (``create_workspace``: made first when missing, as
    ``flowline create-key`` does); its secret is in the answer and nowhere else."""
    async with store.begin() as conn:
        if not await workspaces.workspace_exists(conn, workspace_id):
            if not create_workspace:
                raise NotFound(f"no workspace {workspace_id!r}")
            await workspaces.create_workspace(conn, workspace_id, workspace_id)
        return await api_keys.create_key(conn, workspace_id, name, scope)


async def list_keys(store: Store, workspace_id: str) -> list[KeyRecord]:
    """Every key of the workspace, revoked ones too (with ``revoked_at``), oldest first."""
    async with store.connect() as conn:
        return await api_keys.list_keys(conn, workspace_id)


async def revoke_key(store: Store, workspace_id: str, key_id: str) -> KeyRecord:
    """Revoke a key: refused from the next request on, in every process. Revoking a revoked key
    changes nothing. The workspace's last admin key is kept (Refused): without it nobody could
    manage keys through the API any more (``flowline create-key`` on the database still can)."""
    async with store.begin() as conn:
        await api_keys.lock_workspace(conn, workspace_id)
        found = await api_keys.get_key(conn, workspace_id, key_id)
        if found is None:
            raise NotFound(f"no API key {key_id!r} in this workspace")
        if found.revoked_at is not None:
            return found
        if found.scope == "admin" and await api_keys.active_admin_keys(conn, workspace_id) <= 1:
            raise Refused(f"key {key_id!r} is the workspace's last admin key: create another admin key first")
        await api_keys.revoke(conn, workspace_id, key_id, utcnow())
        revoked = await api_keys.get_key(conn, workspace_id, key_id)
    assert revoked is not None
    return revoked


class KeyCheck:
    """The key of each request: one indexed read, and the last use written at most once a
    minute per key (by this process, and not again while the row says another wrote it)."""

    def __init__(
        self,
        store: Store,
        *,
        use_resolution: timedelta = USE_RESOLUTION,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.store = store
        self.use_resolution = use_resolution
        self._clock = clock
        self._max_entries = max_entries
        self._written: dict[str, float] = {}  # key id -> when this process last wrote its use

    async def key(self, secret: str) -> KeyRecord | None:
        """The unrevoked key with this secret, its use recorded; None: unknown or revoked."""
        async with self.store.connect() as conn:
            found = await api_keys.active_key(conn, secret)
        if found is not None:
            await self._record_use(found)
        return found

    async def _record_use(self, key: KeyRecord) -> None:
        now = utcnow()
        if key.last_used_at is not None and now - key.last_used_at < self.use_resolution:
            return
        moment = self._clock()
        written = self._written.get(key.id)
        if written is not None and moment - written < self.use_resolution.total_seconds():
            return  # this process wrote it a moment ago (the row read may predate that write)
        if len(self._written) >= self._max_entries:
            self._written.clear()  # bounded; a forgotten key costs one more conditional UPDATE
        self._written[key.id] = moment
        try:
            async with self.store.begin() as conn:
                await api_keys.record_use(conn, key.id, now, self.use_resolution)
        except SQLAlchemyError:  # the last use is a hint for operators: never fail a request on it
            log.warning("could not record the use of API key %s", key.id, exc_info=True)
