from __future__ import annotations

from datetime import timedelta

import pytest

from flowline.channels import webhook
from flowline.durations import format_duration, parse_duration
from flowline.templates import render, render_value


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("30s", 30, "30s"),
        ("15m", 900, "15m"),
        ("4h", 14400, "4h"),
        ("7d", 604800, "7d"),
        ("2w", 1209600, "14d"),
    ],
)
def test_durations_round_trip(text: str, seconds: int, canonical: str) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(parse_duration(text)) == canonical
    assert format_duration(timedelta(seconds=90)) == "90s"


@pytest.mark.parametrize("bad", ["", "7", "d7", "1.5h", "7y", 7])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_liquid_templates_render_nested_values_with_defaults() -> None:
    context = {"profile": {"first_name": "Ada"}, "event": {"total": 3}}
    assert render("Hi {{ profile.first_name }}, {{ event.total }}", context) == "Hi Ada, 3"
    assert render("Hi {{ profile.nick | default: 'there' }}", context) == "Hi there"
    assert render_value({"a": ["{{ event.total }}", 1]}, context) == {"a": ["3", 1]}


def test_webhook_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = webhook.encode({"a": 1})
    header = webhook.sign("secret", body, timestamp=1_000_000)
    assert webhook.verify("secret", body, header, now=1_000_010)
    assert not webhook.verify("secret", body + b" ", header, now=1_000_010)
    assert not webhook.verify("other", body, header, now=1_000_010)
    assert not webhook.verify("secret", body, header, now=1_000_000 + 301)
    assert not webhook.verify("secret", body, "garbage", now=1_000_000)


def test_templates_that_read_profile_attributes_are_recognised() -> None:
    from flowline.templates import uses_profile_attributes

    assert uses_profile_attributes("Hi {{ profile.first_name }}")
    assert uses_profile_attributes({"a": ["{{ profile['email'] }}"]})
    assert uses_profile_attributes("{% if profile %}x{% endif %}")
    assert not uses_profile_attributes("Hi {{ profile.id }} from {{ event.plan }}")
    assert not uses_profile_attributes("profile.first_name without braces")
    assert not uses_profile_attributes({"n": 1})
