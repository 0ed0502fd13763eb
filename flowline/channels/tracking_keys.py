"""Each workspace's tracking key, looked up once per process and kept (a key never changes once
made, so the cache only bounds memory)."""

from __future__ import annotations

from flowline.store import workspaces
from flowline.store.database import Store
from flowline.ttl_cache import TtlCache


class TrackingKeys:
    def __init__(self, store: Store, *, cache_seconds: float = 3600) -> None:
        self.store = store
        self._keys: TtlCache[str, bytes] = TtlCache(cache_seconds)

    async def key(self, workspace_id: str) -> bytes | None:
        """The workspace's key (made on first use); None for an unknown workspace."""
        found = self._keys.get(workspace_id)
        if found is None:
            try:
                async with self.store.begin() as conn:
                    found = await workspaces.tracking_key(conn, workspace_id)
            except LookupError:
                return None
            self._keys.put(workspace_id, found)
        return found
