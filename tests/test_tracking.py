"""Open pixel, click redirect and unsubscribe through the real app, on both databases; the
channel events they record reach a journey that waits for them."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.routes.tracking import PIXEL
from flowline.channels.email_links import prepare_email, unsubscribe_url
from flowline.channels.providers import OutgoingMessage
from flowline.channels.smtp import SmtpProvider
from flowline.channels.tracking import TrackingToken, tracking_url
from flowline.store import deliveries as ledger
from flowline.store import tables, workspaces
from flowline.store.database import Store
from flowline.store.profile_changes import blocks
from flowline.store.profiles import ensure_profiles, get_profile
from flowline.store.tables import events
from tests.conftest import Tenant, finish, new_tenant
from tests.smtp import SmtpServer
from tests.test_journeys import publish

PUBLIC = "http://flowline"


async def _key(store: Store, tenant: Tenant) -> bytes:
    async with store.begin() as conn:
        return await workspaces.tracking_key(conn, tenant.id)


async def _delivery(
    store: Store,
    tenant: Tenant,
    *,
    profile: str = "ada",
    sender: str | None = None,
    journey_id: str | None = None,
    step_id: str = "mail",
) -> str:
    delivery = ledger.Delivery(
        workspace_id=tenant.id,
        journey_id=journey_id or f"j-{uuid.uuid4().hex[:8]}",
        step_id=step_id,
        visit=0,
        recipient_id=profile,
        channel="email",
        flow_id="news",
        version=1,
        address=f"{profile}@example.test",
        sender=sender,
    )
    async with store.begin() as conn:
        # A message goes to a stored person (feedback for an erased one raises no event).
        await ensure_profiles(store, conn, tenant.id, [profile])
        row, _ = await ledger.open_delivery(store, conn, delivery)
        await ledger.close_delivery(conn, row["id"], "sent")
    return str(row["id"])


def _url(key: bytes, tenant: Tenant, delivery_id: str, kind: Any, url: str | None = None) -> str:
    return tracking_url(PUBLIC, TrackingToken(tenant.id, delivery_id, kind, url), key)


async def _events(store: Store, tenant: Tenant, name: str) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        rows = await conn.execute(
            select(events)
            .where(events.c.workspace_id == tenant.id, events.c.name == name)
            .order_by(events.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def _delivery_row(store: Store, delivery_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        row = await ledger.get_delivery(conn, delivery_id)
    assert row is not None
    return row


async def test_the_open_pixel_records_the_first_open_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant)
    pixel = _url(key, tenant, delivery_id, "open")
    for _ in range(2):
        response = await api.get(pixel, headers={"Authorization": ""})
        assert response.status_code == 200 and response.content == PIXEL
        assert response.headers["content-type"] == "image/gif"
        assert "no-store" in response.headers["cache-control"]
    [opened] = await _events(store, tenant, "message_opened")
    assert opened["id"] == f"{delivery_id}:opened" and opened["profile_id"] == "ada"
    assert opened["properties"] == {
        "delivery_id": delivery_id,
        "channel": "email",
        "flow_id": "news",
        "version": 1,
        "step_id": "mail",
        "journey_id": opened["properties"]["journey_id"],
    }
    first = (await _delivery_row(store, delivery_id))["opened_at"]
    assert first is not None and first == opened["timestamp"]


async def test_a_bad_pixel_token_still_gets_the_gif_and_records_nothing(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant)
    good = _url(key, tenant, delivery_id, "open")
    forged = tracking_url(PUBLIC, TrackingToken(tenant.id, delivery_id, "open"), b"not our secret")
    for url in (forged, good[:-3] + "AAA", f"{PUBLIC}/t/o/nonsense"):
        response = await api.get(url)
        assert response.status_code == 200 and response.content == PIXEL
    assert await _events(store, tenant, "message_opened") == []
    assert (await _delivery_row(store, delivery_id))["opened_at"] is None


async def test_a_click_redirects_to_the_signed_url_and_records_it(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant)
    target = "https://shop.example/sale?a=1&b=2"
    for _ in range(2):
        response = await api.get(_url(key, tenant, delivery_id, "click", target))
        assert response.status_code == 302 and response.headers["location"] == target
    await api.get(_url(key, tenant, delivery_id, "click", "https://shop.example/other"))
    clicked = await _events(store, tenant, "message_clicked")
    assert sorted(e["properties"]["url"] for e in clicked) == ["https://shop.example/other", target]
    assert all(e["properties"]["delivery_id"] == delivery_id for e in clicked)
    assert (await _delivery_row(store, delivery_id))["clicked_at"] is not None


async def test_a_tampered_click_token_is_404_and_records_nothing(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant)
    good = _url(key, tenant, delivery_id, "click", "https://shop.example/")
    tag = good.rsplit(".", 1)[1]
    evil_payload = _url(key, tenant, delivery_id, "click", "https://evil.example/").rsplit("/", 1)[1]
    tampered = f"{PUBLIC}/t/c/{evil_payload.split('.')[0]}.{tag}"
    open_token = _url(key, tenant, delivery_id, "open").replace("/t/o/", "/t/c/")
    # Signed but not a web link (prepare_email never signs one): refused as well.
    script = _url(key, tenant, delivery_id, "click", "javascript:alert(1)")
    for url in (tampered, open_token, script, f"{PUBLIC}/t/c/x.y"):
        response = await api.get(url)
        assert response.status_code == 404 and "location" not in response.headers
        assert response.json() == {"message": "unknown link"}
    assert await _events(store, tenant, "message_clicked") == []
    assert (await _delivery_row(store, delivery_id))["clicked_at"] is None


async def test_one_click_unsubscribe_adds_do_not_contact_for_the_sender(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant, sender="news")
    leave = unsubscribe_url(delivery_id=delivery_id, workspace_id=tenant.id, public_url=PUBLIC, secret=key)
    for _ in range(2):
        response = await api.post(
            leave,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": ""},
        )
        assert response.status_code == 200
    async with store.connect() as conn:
        profile = await get_profile(conn, tenant.id, "ada")
    assert profile is not None
    assert profile["do_not_contact"] == [{"channel": "email", "sender": "news"}]
    assert blocks(profile["do_not_contact"], "email", "news")
    assert not blocks(profile["do_not_contact"], "email", "billing")
    [unsubscribed] = await _events(store, tenant, "message_unsubscribed")
    assert unsubscribed["properties"]["delivery_id"] == delivery_id
    assert len(await _events(store, tenant, "do_not_contact_changed")) == 1
    assert (await _delivery_row(store, delivery_id))["unsubscribed_at"] is not None


def _form_action(page: str) -> str:
    """The action of the page's only form, which must POST."""
    parser = _Forms()
    parser.feed(page)
    [(method, action)] = parser.forms
    assert method == "post"
    return action


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            found = dict(attrs)
            self.forms.append(((found.get("method") or "get").lower(), found.get("action") or ""))


async def test_opening_the_unsubscribe_link_only_asks_and_its_button_unsubscribes(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    """Scanners and prefetchers follow links with GET: the page changes nothing, its button POSTs."""
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant, profile="bob")
    leave = _url(key, tenant, delivery_id, "unsubscribe")
    for _ in range(2):
        page = await api.get(leave, headers={"Authorization": ""})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "no-store" in page.headers["cache-control"]
    # It loads nothing and posts only to us; it names nobody.
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "bob" not in page.text and delivery_id not in page.text
    async with store.connect() as conn:
        profile = await get_profile(conn, tenant.id, "bob")
    assert profile is not None and profile["do_not_contact"] == []
    assert await _events(store, tenant, "message_unsubscribed") == []
    assert (await _delivery_row(store, delivery_id))["unsubscribed_at"] is None

    # The form posts (relative to the page) to the link itself, with the one-click body.
    target = urljoin(leave, _form_action(page.text))
    assert target == leave
    done = await api.post(target, data={"List-Unsubscribe": "One-Click"}, headers={"Authorization": ""})
    assert done.status_code == 200 and "unsubscribed" in done.text
    async with store.connect() as conn:
        profile = await get_profile(conn, tenant.id, "bob")
    assert profile is not None and blocks(profile["do_not_contact"], "email", "anyone")
    assert not blocks(profile["do_not_contact"], "sms")
    assert len(await _events(store, tenant, "message_unsubscribed")) == 1


async def test_a_tampered_unsubscribe_token_is_404_for_the_page_and_the_post(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    delivery_id = await _delivery(store, tenant)
    good = _url(key, tenant, delivery_id, "unsubscribe")
    # A click token is no unsubscribe token; a changed tag or payload verifies under no key.
    forged = [
        _url(key, tenant, delivery_id, "click", "https://x.example/").replace("/t/c/", "/t/u/"),
        good[:-3] + "AAA",
        _url(key, tenant, "someone-else", "unsubscribe").rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1],
        f"{PUBLIC}/t/u/x.y",
    ]
    for url in forged:
        for method in ("GET", "POST"):
            response = await api.request(method, url)
            assert response.status_code == 404 and response.json() == {"message": "unknown link"}, url
    assert await _events(store, tenant, "message_unsubscribed") == []
    assert (await _delivery_row(store, delivery_id))["unsubscribed_at"] is None


async def test_each_workspace_signs_with_its_own_key(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    key = await _key(store, tenant)
    other = await new_tenant(store)
    other_key = await _key(store, other)
    assert other_key != key and await _key(store, tenant) == key
    delivery_id = await _delivery(store, tenant)
    # Another workspace's key cannot sign for this workspace's delivery, nor this workspace's key
    # for another's name; a token naming an unknown workspace verifies under no key.
    forged = [
        _url(other_key, tenant, delivery_id, "unsubscribe"),
        _url(key, other, delivery_id, "unsubscribe"),
        _url(key, Tenant("ws-unknown", ""), delivery_id, "unsubscribe"),
    ]
    for url in forged:
        assert (await api.post(url)).status_code == 404
    # Signed by the other workspace for its own name: authentic, but not its delivery.
    assert (await api.get(_url(other_key, other, delivery_id, "open"))).status_code == 200
    assert await _events(store, tenant, "message_opened") == []
    assert (await _delivery_row(store, delivery_id))["opened_at"] is None
    assert (await _delivery_row(store, delivery_id))["unsubscribed_at"] is None


async def test_workspaces_made_before_tracking_keys_get_one_on_first_use(store: Store) -> None:
    tenant = await new_tenant(store)
    async with store.begin() as conn:
        await conn.execute(
            tables.workspaces.update().where(tables.workspaces.c.id == tenant.id).values(tracking_key=None)
        )
    first = await _key(store, tenant)
    assert len(first) >= 32 and await _key(store, tenant) == first
    async with store.begin() as conn:
        with pytest.raises(LookupError):
            await workspaces.tracking_key(conn, "ws-unknown")


def _opened_flow() -> dict[str, Any]:
    opened = {"event": "message_opened", "where": [{"property": "step_id", "op": "is", "value": "mail"}]}
    return {
        "id": "news",
        "name": "News",
        "trigger": {"type": "flow"},
        "steps": [
            {
                "id": "wait",
                "type": "wait_for_event",
                "conditions": [opened],
                "timeout": "4h",
                "save": {"opened": "delivery_id"},
                "next": {"happened": "done", "timeout": "done"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


async def test_a_journey_waiting_for_the_open_hears_the_pixel(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    worker: None,
    smtp: SmtpServer,
) -> None:
    key = await _key(store, tenant)
    await publish(api, _opened_flow())
    started = await api.post("/v1/flows/news/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    journey_id = started.json()["journey_id"]
    # The open of another step's message does not count; this step's does.
    other = await _delivery(store, tenant, journey_id=journey_id, step_id="other")
    await api.get(_url(key, tenant, other, "open"))
    mail = await _delivery(store, tenant, journey_id=journey_id)
    # The message as the send step sends it, through a real SMTP server; the pixel is read from
    # the HTML that arrived.
    message = OutgoingMessage(
        channel="email", idempotency_key=mail, to=f"ada-{mail}@example.test", html="<p>Hi</p>"
    )
    prepared = prepare_email(message, delivery_id=mail, workspace_id=tenant.id, public_url=PUBLIC, secret=key)
    await SmtpProvider(smtp.settings(), allow_private=True).send(prepared)
    [received] = smtp.to(message.to)
    pixel = received.part("html").split('<img src="', 1)[1].split('"', 1)[0]
    assert (await api.get(pixel)).status_code == 200
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:1] == [("wait", "happened")]
    assert state.variables == {"opened": mail}
