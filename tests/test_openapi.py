"""The OpenAPI document is valid OpenAPI 3.1, declares every error answer with its body, and the
flow document's JSON Schema (``FlowDocument.model_json_schema()``, the one editors use) accepts
the example flows and refuses invalid ones, as validation does."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator

from api.app import create_app
from flowline.flow.document import FlowDocument
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.settings import Settings
from tests.flows import every_step_type_flow, step_types, welcome_flow

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.yaml"))


def _document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(sweep_seconds=0)).openapi()
    return schema


def _flow_schema() -> dict[str, Any]:
    schema: dict[str, Any] = FlowDocument.model_json_schema(by_alias=True)
    return schema


def test_the_document_is_valid_openapi() -> None:
    faults = [
        f"{list(e.absolute_path)}: {e.message}" for e in OpenAPIV31SpecValidator(_document()).iter_errors()
    ]
    assert faults == []


def _mappings(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["discriminator"]["mapping"]] if "mapping" in node.get("discriminator", {}) else []
        return found + [m for value in node.values() for m in _mappings(value)]
    if isinstance(node, list):
        return [m for value in node for m in _mappings(value)]
    return []


def test_discriminator_mappings_are_references() -> None:
    """The ``send`` step is a union of its own (by ``channel``) inside the ``type`` union."""
    schema = _flow_schema()
    mappings = _mappings(schema)
    assert mappings, "the step union has a discriminator mapping"
    for mapping in mappings:
        assert all(isinstance(target, str) for target in mapping.values()), mapping
    steps = schema["properties"]["steps"]["items"]["discriminator"]["mapping"]
    assert steps["send"] == "#/$defs/SendStep"
    assert schema["$defs"]["SendStep"]["discriminator"]["propertyName"] == "channel"


def test_defaults_are_written_as_the_document_writes_them() -> None:
    """A duration default reads ``10s`` (not ISO 8601's ``PT10S``, which its own pattern refuses)."""
    defs = _flow_schema()["$defs"]
    assert defs["CallApiStep"]["properties"]["timeout"]["default"] == "10s"
    assert defs["Goal"]["properties"]["within"]["default"] == "7d"


def _validator() -> jsonschema.Draft202012Validator:
    schema = _flow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_flow_fits_the_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert list(_validator().iter_errors(document)) == []
    parse_flow(document)  # and validation takes it


def test_flows_of_every_step_type_fit_the_schema() -> None:
    validator = _validator()
    for document in (every_step_type_flow(), welcome_flow("http://127.0.0.1:9000")):
        assert [e.message for e in validator.iter_errors(json.loads(json.dumps(document)))] == []


def _invalid_flows() -> dict[str, dict[str, Any]]:
    base = yaml.safe_load(EXAMPLES[0].read_text())
    send = next(i for i, s in enumerate(base["steps"]) if s["type"] == "send")

    def changed(**step: Any) -> dict[str, Any]:
        document = copy.deepcopy(base)
        document["steps"][send] = {**document["steps"][send], **step}
        return document

    no_steps = copy.deepcopy(base)
    no_steps["steps"] = []
    return {
        "unknown step type": changed(type="teleport"),
        "unknown channel": changed(channel="pigeon"),
        "sms content without a body": changed(channel="sms", content={"title": "hi"}),
        "unknown field": changed(colour="red"),
        "no steps": no_steps,
    }


@pytest.mark.parametrize("name", list(_invalid_flows()))
def test_invalid_flows_fail_the_schema_as_validation_does(name: str) -> None:
    document = _invalid_flows()[name]
    assert list(_validator().iter_errors(document)) != []
    with pytest.raises(FlowInvalid):
        parse_flow(document)


def test_every_step_type_is_in_the_schema() -> None:
    """The schema's step union names every step model (a new step type cannot be left out)."""
    defs = _flow_schema()["$defs"]
    consts = {
        model["properties"]["type"].get("const")
        for model in defs.values()
        if "type" in model.get("properties", {})
    }
    assert step_types() <= consts


ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "422", "503"}


def test_every_error_answer_declares_its_body() -> None:
    """Each declared error status has a JSON body with ``message`` (and ``faults`` for 422)."""
    document = _document()
    components = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status not in ERROR_STATUSES or path == "/readyz":  # readyz: its checks
                    continue
                schema = answer["content"]["application/json"]["schema"]
                refs = [schema["$ref"]] if "$ref" in schema else [s["$ref"] for s in schema["anyOf"]]
                names = {ref.rsplit("/", 1)[1] for ref in refs}
                assert any("message" in components[n]["properties"] for n in names), (path, method, status)
                if status == "422":
                    assert "Invalid" in names, (path, method)
                if status == "503":
                    assert "Retry-After" in answer["headers"], (path, method)


def test_every_authenticated_route_declares_401_and_503() -> None:
    document = _document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert {"401", "503"} <= set(operation["responses"]), (path, method)


def test_every_reference_names_a_component() -> None:
    """A $ref to no component breaks ReDoc's whole page ("Invalid reference token"); the
    validator above does not resolve references."""
    document = _document()
    components = document["components"]["schemas"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs and refs - set(components) == set()
