"""PUT/GET/DELETE /v1/elements and the checks of custom steps against the catalogue, on both
databases through the real app: versions, faults with their paths, code elements listed, delete
refused while a running flow uses an element."""

from __future__ import annotations

from typing import Any

import httpx

from flowline.secrets import MASK
from flowline.store import elements
from flowline.store.database import Store
from tests.conftest import Tenant
from tests.test_custom_elements import custom_flow, register_element


async def test_put_get_list_and_versions(api: httpx.AsyncClient) -> None:
    element = register_element("https://webinars.example.com/register")
    created = await api.put("/v1/elements/register", json=element)
    assert created.status_code == 200, created.text
    shown = created.json()
    assert shown["kind"] == "declarative" and shown["version"] == 1
    assert shown["outcomes"] == ["already", "registered", "rejected", "fallback", "error"]
    assert shown["input_schema"]["required"] == ["email"]
    assert shown["input_schema"]["properties"]["seats"] == {"type": "integer", "default": 1}

    # The same definition again is no edit; a change is version 2, and version 1 stays readable.
    assert (await api.put("/v1/elements/register", json=element)).json()["version"] == 1
    edited = element | {"timeout": "5s"}
    assert (await api.put("/v1/elements/register", json=edited)).json()["version"] == 2
    newest = (await api.get("/v1/elements/register")).json()
    assert newest["version"] == 2 and newest["definition"]["timeout"] == "5s"
    old = (await api.get("/v1/elements/register", params={"version": 1})).json()
    assert old["version"] == 1 and old["definition"]["timeout"] == "2s"
    assert old["created_at"] == newest["created_at"] and newest["updated_at"] >= old["updated_at"]
    assert (await api.get("/v1/elements/register", params={"version": 3})).status_code == 404

    listed = (await api.get("/v1/elements")).json()["elements"]
    by_id = {e["id"]: e for e in listed}
    assert by_id["register"]["version"] == 2
    assert by_id["example.score"]["kind"] == "code"  # the example plugin, installed by make
    assert "threshold" in by_id["example.score"]["input_schema"]["properties"]


async def test_element_faults_name_their_paths(api: httpx.AsyncClient) -> None:
    element = register_element("ftp://nowhere")
    element["inputs"]["seats"] = {"type": "integer", "default": "one"}
    element["save"] = {"x": "no-root"}
    element["outcomes"] = [
        {"name": "fallback", "status": "2xx"},
        {"name": "odd"},
        {"name": "c", "when": "1 +"},
    ]
    response = await api.put("/v1/elements/broken", json=element)
    assert response.status_code == 422
    paths = {fault["path"] for fault in response.json()["faults"]}
    assert {
        "$.request.url",
        "$.inputs.seats",
        "$.save.x",
        "$.outcomes[0]",
        "$.outcomes[1]",
        "$.outcomes[2].when",
    } <= paths
    # Filters and functions are checked as in flows being saved.
    unknown = register_element("https://x.example.com/{{ params.email | shout }}")
    response = await api.put("/v1/elements/unknown", json=unknown)
    assert response.status_code == 422 and response.json()["faults"][0]["path"] == "$.request.url"
    assert (await api.get("/v1/elements/broken")).status_code == 404
    # A code element's id is not free.
    assert (
        await api.put("/v1/elements/example.score", json=register_element("https://x.example.com"))
    ).status_code == 409


def _faults(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {f["path"]: f["message"] for f in response.json()["faults"]}


async def test_custom_steps_are_checked_against_their_elements(api: httpx.AsyncClient) -> None:
    await api.put("/v1/elements/register", json=register_element("https://webinars.example.com/register"))
    params: dict[str, Any] = {"seats": "two", "tags": {"not": "a list"}, "colour": "red"}
    flow = custom_flow(
        {"element": "register", "params": params, "next": {"registered": "on_r", "booked": "on_r"}}
    )
    flow["steps"].insert(0, {"id": "first", "type": "pause", "for": "1h"})
    for route in ("/v1/flows/customs", "/v1/flows/customs/validate"):
        send = api.put if route.endswith("customs") else api.post
        faults = _faults(await send(route, json=flow))
        assert faults == {
            "$.steps[1].params.colour": "unknown param (the element's inputs: email, seats, tags)",
            "$.steps[1].params.email": "a required param is missing",
            "$.steps[1].params.seats": "expected an integer",
            "$.steps[1].params.tags": "expected an array",
            "$.steps[1].next.booked": (
                "element 'register' has no outcome 'booked' "
                "(its outcomes: already, registered, rejected, fallback, error)"
            ),
        }
    # A code element: its params model's rules.
    code = custom_flow({"element": "example.score", "params": {"service": "not a url", "threshold": 500}})
    faults = _faults(await api.put("/v1/flows/customs", json=code))
    assert set(faults) == {
        "$.steps[0].params.service",
        "$.steps[0].params.email",
        "$.steps[0].params.threshold",
        "$.steps[0].next.registered",
        "$.steps[0].next.already",
        "$.steps[0].next.rejected",
        "$.steps[0].next.fallback",
    }
    # An unknown element.
    faults = _faults(await api.put("/v1/flows/customs", json=custom_flow({"element": "ghost"})))
    assert faults == {"$.steps[0].element": "no element 'ghost'"}
    # Templates are checked when a journey renders them; a valid step saves.
    good = custom_flow(
        {"element": "register", "params": {"email": "{{ profile.email }}", "seats": "{{ vars.n }}"}}
    )
    assert (await api.put("/v1/flows/customs", json=good)).status_code == 200


async def test_publish_checks_elements_and_delete_is_refused_while_used(api: httpx.AsyncClient) -> None:
    await api.put("/v1/elements/register", json=register_element("https://webinars.example.com/register"))
    flow = custom_flow({"element": "register", "params": {"email": "{{ profile.email }}"}})
    assert (await api.put("/v1/flows/customs", json=flow)).status_code == 200
    assert (await api.post("/v1/flows/customs/publish")).status_code == 200

    refused = await api.delete("/v1/elements/register")
    assert refused.status_code == 409 and "'customs'" in refused.json()["message"]
    assert (await api.delete("/v1/elements/example.score")).status_code == 409
    assert (await api.post("/v1/flows/customs/stop")).status_code == 200
    assert (await api.delete("/v1/elements/register")).status_code == 204
    assert (await api.get("/v1/elements/register")).status_code == 404
    assert (await api.delete("/v1/elements/register")).status_code == 404
    # The draft names an element that no longer exists: publishing it again is refused.
    faults = _faults(await api.post("/v1/flows/customs/publish"))
    assert faults == {"$.steps[0].element": "no element 'register'"}


async def test_credential_headers_are_masked_and_kept(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    element = register_element("https://webinars.example.com/register")
    assert (await api.put("/v1/elements/register", json=element)).status_code == 200
    shown = (await api.get("/v1/elements/register")).json()["definition"]
    assert shown["request"]["headers"] == {"Authorization": MASK, "X-Person": "{{ profile.id }}"}
    # The definition read back, with a change: the mask keeps the stored secret.
    assert (await api.put("/v1/elements/register", json=shown | {"timeout": "3s"})).json()["version"] == 2
    async with store.connect() as conn:
        stored = await elements.get_element(conn, tenant.id, "register")
    assert (
        stored is not None and stored.definition.request.headers["Authorization"] == "Bearer element-secret"
    )
    # Nothing stored to keep.
    fresh = register_element("https://x.example.com")
    fresh["request"]["headers"] = {"X-Api-Key": MASK}
    faults = _faults(await api.put("/v1/elements/fresh", json=fresh))
    assert faults == {'$.request.headers["X-Api-Key"]': "'***' keeps a stored secret; none is stored"}
