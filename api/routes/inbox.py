"""The in-app inbox seen from the app: read a message, consume (redeem) a reward message.

Listing is GET /v1/profiles/{id}/inbox (api/routes/profiles.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, errors
from api.schemas import InboxMessage
from flowline.channels import inbox
from flowline.store import inbox as inbox_store
from flowline.store.database import utcnow
from launch.journey_start import JourneyStartFailed

log = logging.getLogger(__name__)

router = APIRouter(route_class=CheckedRoute, prefix="/v1/inbox", tags=["inbox"], responses=AUTHENTICATED)


def _not_found(message_id: str) -> ApiError:
    return ApiError(404, f"no inbox message {message_id!r}")


async def _settled(svc: Svc, call: Any, workspace: str, message_id: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await call(svc.store, svc.launcher, workspace, message_id, utcnow())
        return result
    except LookupError as error:
        raise _not_found(message_id) from error
    except JourneyStartFailed as error:
        # The change and its event are stored; the sweeper routes the event to journeys later.
        log.warning("inbox event of %s not routed yet (the sweeper will): %s", message_id, error)
        async with svc.store.connect() as conn:
            found = await inbox_store.get_message(conn, workspace, message_id)
        if found is None:
            raise _not_found(message_id) from error
        return found


@router.post(
    "/{message_id}/read", response_model=InboxMessage, responses=errors(404), summary="Mark a message read"
)
async def read_message(message_id: str, workspace: Workspace, svc: Svc) -> Any:
    """Idempotent. The first read raises ``message_opened`` (channel in_app) for journeys."""
    return await _settled(svc, inbox.read_message, workspace, message_id)


@router.post(
    "/{message_id}/consume",
    response_model=InboxMessage,
    responses=errors(404, 409),
    summary="Redeem a consumable message",
)
async def consume_message(message_id: str, workspace: Workspace, svc: Svc) -> Any:
    """Only for messages whose data has ``consumable: true``, and only once (then 409). Raises
    ``message_consumed`` with the message's data."""
    try:
        return await _settled(svc, inbox.consume_message, workspace, message_id)
    except inbox.NotConsumable as error:
        raise ApiError(409, f"inbox message {message_id!r} is not consumable") from error
    except inbox.AlreadyConsumed as error:
        raise ApiError(409, f"inbox message {message_id!r} was consumed already") from error
