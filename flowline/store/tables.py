"""The schema. Every row belongs to a workspace; Alembic migrations (migrations/) create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:  # most are UTC already (utcnow): no conversion then
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store")
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json: Any = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 200  # longest id a customer may give (profiles, events, flows)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # Signs outgoing webhooks (HMAC-SHA256).
    Column("webhook_secret", String(128), nullable=False),
    # The default time zone of wall-clock times, for people without a ``timezone`` attribute.
    Column("timezone", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    # Each channel's provider settings (flowline/channels/config.py); NULL: none configured.
    Column("channels", Json),
    # Signs email tracking links (flowline/channels/tracking.py); never shown to anyone.
    Column("tracking_key", String(128)),
    # Bumped by every publish, stop and drain of a flow and every segment saved (migration 0019):
    # each process caches the flows an event can start, and checks this in the transaction that
    # stores events (flowline/store/flows.py, routing_generation).
    Column("routing_generation", BigInteger, nullable=False, server_default="0"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    # SHA-256 of the key: keys are long random strings, so a fast hash is enough.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

profiles = Table(
    "profiles",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("attributes", Json, nullable=False),
    # Tags (a sorted list of strings) and do-not-contact entries ([{channel, sender}], where
    # channel "all" and sender null mean every channel / every sender).
    Column("tags", Json, nullable=False, default=list),
    Column("do_not_contact", Json, nullable=False, default=list),
    # The person who referred this one (a profile id of the same workspace).
    Column("referrer_id", String(ID)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

profile_friends = Table(
    "profile_friends",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("profile_id", String(ID), primary_key=True),
    Column("friend_id", String(ID), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("profile_id", String(ID), nullable=False),
    Column("name", String(200), nullable=False),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("properties", Json, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    # Set once the event has reached every flow and journey it concerns.
    Column("routed_at", UTCDateTime()),
    Index(None, "workspace_id", "profile_id", "name", "timestamp"),
    # A window of one event name for a whole audience (migration 0011), read without the table.
    Index(None, "workspace_id", "name", "timestamp", "profile_id"),
    # The sweeper looks for events whose routing did not finish.
    Index(
        "ix_events_unrouted",
        "received_at",
        postgresql_where=text("routed_at IS NULL"),
        sqlite_where=text("routed_at IS NULL"),
    ),
)

# Events whose routing by the process that stored them failed (Temporal refused): the same event
# sent again is routed at once. Other unrouted events that come again are routed by the resend
# only once their first routing had time to finish (launch/routing.py, resend_grace).
event_routing_failures = Table(
    "event_routing_failures",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("event_id", String(ID), primary_key=True),
    Column("failed_at", UTCDateTime(), nullable=False),
)

flows = Table(
    "flows",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    # draft | running | draining | stopped | finished
    Column("status", String(16), nullable=False),
    Column("draft", Json, nullable=False),
    Column("current_version", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("flow_id", String(ID), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", Json, nullable=False),
    Column("trigger_type", String(32), nullable=False),
    # The event name of an event trigger: routing looks flows up by it.
    Column("trigger_event", String(200)),
    Column("published_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(["workspace_id", "flow_id"], ["flows.workspace_id", "flows.id"], ondelete="CASCADE"),
    Index(None, "workspace_id", "trigger_event"),
)

journeys = Table(
    "journeys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("flow_id", String(ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("profile_id", String(ID), nullable=False),
    Column("status", String(16), nullable=False),
    # Re-entry as a unique key: 'once' forever (never), 'active' while running (after_exit),
    # 'entry:<key>' while running (concurrent); NULL once released. NULLs never collide.
    Column("entry_lock", String(250)),
    Column("trigger_event_id", String(ID)),
    Column("last_step", String(64)),
    Column("exit_reason", String(200)),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    # The flow's goal: the first matching event within the goal's window (also after the end).
    Column("converted_at", UTCDateTime()),
    Column("goal_event_id", String(ID)),
    UniqueConstraint("workspace_id", "flow_id", "profile_id", "entry_lock"),
    Index(None, "workspace_id", "profile_id"),
    Index(None, "workspace_id", "flow_id", "status"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    # journey/step/visit/recipient: the ledger entry that makes a send happen once.
    Column("idempotency_key", String(500), nullable=False, unique=True),
    Column("journey_id", String(128), nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("visit", Integer, nullable=False),
    Column("recipient_id", String(ID), nullable=False),
    Column("channel", String(16), nullable=False),
    # pending | sent | failed | skipped
    Column("status", String(16), nullable=False),
    Column("detail", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    # The flow version that sent it (statistics) and where it went.
    Column("flow_id", String(ID)),
    Column("version", Integer),
    Column("address", String(500)),
    Column("sender", String(200)),
    # The provider's id for the message: delivery reports find their row by it.
    Column("provider_message_id", String(200)),
    # Feedback: the first time each happened.
    Column("delivered_at", UTCDateTime()),
    Column("opened_at", UTCDateTime()),
    Column("clicked_at", UTCDateTime()),
    Column("bounced_at", UTCDateTime()),
    Column("unsubscribed_at", UTCDateTime()),
    # A report that the message failed after the send was accepted ('status' stays 'sent': it
    # drives the send's retries; statistics count this column).
    Column("failed_at", UTCDateTime()),
    Index(None, "workspace_id", "journey_id"),
    # Frequency caps: one person's recent sends on one channel, across flows.
    Index(None, "workspace_id", "recipient_id", "channel", "created_at"),
    Index(None, "channel", "provider_message_id"),
    Index(None, "workspace_id", "flow_id", "version"),
)

push_sends = Table(
    "push_sends",
    metadata,
    # One push delivery reaches each of the person's devices with its own FCM call, and FCM takes
    # no idempotency key: a device's row is written right after FCM accepts its message, so a
    # retried (or crashed and re-run) send skips the devices already sent, and keeps every
    # device's message id (delivery reports may name any of them).
    Column("delivery_id", String(40), ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(500), primary_key=True),
    Column("provider_message_id", String(200)),
    Column("sent_at", UTCDateTime(), nullable=False),
    Index(None, "provider_message_id"),
)

journey_steps = Table(
    "journey_steps",
    metadata,
    # One row per step visit of a journey (its path), numbered from 0 across continue-as-new:
    # written when the journey starts a long wait and at its end, upserted by (journey_id, seq)
    # so that retried writes leave the same rows. left_at NULL: the journey is at that step.
    Column("journey_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("flow_id", String(ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("step_type", String(32), nullable=False),
    Column("entered_at", UTCDateTime(), nullable=False),
    Column("left_at", UTCDateTime()),
    Column("branch", String(64)),
    Column("error", Text),
    Column("started_journey", String(128)),
    # Flow statistics group a flow's visits by version and step.
    Index(None, "workspace_id", "flow_id", "version", "step_id"),
)

inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("profile_id", String(ID), nullable=False),
    Column("delivery_id", String(40), ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("read_at", UTCDateTime()),
    Column("consumed_at", UTCDateTime()),
    Index(None, "workspace_id", "profile_id", "created_at"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("profile_id", String(ID), nullable=False),
    # The journey and step that handed the person over (unique: a retried step opens one).
    Column("journey_id", String(128)),
    Column("step_id", String(64)),
    Column("visit", Integer),
    Column("tag", String(200)),
    Column("note", Text),
    # open | closed
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("journey_id", "step_id", "visit"),
    Index(None, "workspace_id", "profile_id"),
)

call_rates = Table(
    "call_rates",
    metadata,
    # One row per rate-limited call_api step (and period): the calls it has handed out.
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("flow_id", String(ID), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("period_seconds", Integer, primary_key=True),
    # The latest calendar period (Unix seconds // period_seconds) with calls reserved, and how
    # many; earlier periods are full or past, so one row is all the state a rate needs.
    Column("window_index", BigInteger, nullable=False),
    Column("used", Integer, nullable=False),
)

attribute_types = Table(
    "attribute_types",
    metadata,
    # A declared custom attribute: values written through the API are checked against its type.
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    # boolean | text | number | date | list
    Column("type", String(16), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

push_tokens = Table(
    "push_tokens",
    metadata,
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("profile_id", String(ID), primary_key=True),
    Column("token", String(500), primary_key=True),
    # ios | android | web
    Column("platform", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

segments = Table(
    "segments",
    metadata,
    # A named rule (flowline/conditions/rules.py); its members are computed when asked.
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("rule", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # When the membership was first computed (the baseline: nobody "enters" then); NULL before.
    Column("evaluated_at", UTCDateTime()),
)

segment_members = Table(
    "segment_members",
    metadata,
    # Who is in each segment as last evaluated: the diff against a new evaluation is who enters
    # (segment_entered) and who leaves (segment_exited).
    Column("workspace_id", String(64), primary_key=True),
    Column("segment_id", String(ID), primary_key=True),
    Column("profile_id", String(ID), primary_key=True),
    Column("entered_at", UTCDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["workspace_id", "segment_id"], ["segments.workspace_id", "segments.id"], ondelete="CASCADE"
    ),
)

destinations = Table(
    "destinations",
    metadata,
    # An export destination (flowline/destinations/settings.py): ``settings`` is its model's JSON,
    # secrets included (the API masks them).
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("settings", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

export_records = Table(
    "export_records",
    metadata,
    # The outbox of export destinations (flowline/exports/): one row per record to deliver,
    # written in the transaction of what it reports (an export step's visit, a stored event) and
    # keyed so that a retried write adds nothing; the batcher claims, delivers and settles it.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("destination_id", String(ID), nullable=False),
    # journey:step:visit[:part] for a step's records, event:<id>[:part] for an event's.
    Column("record_key", String(700), nullable=False),
    # The step that wrote it (null for a record of an event).
    Column("flow_id", String(ID)),
    Column("version", Integer),
    Column("step_id", String(ID)),
    Column("journey_id", String(ID)),
    # Whose record it is: the destination's identity is read from this profile when it is sent.
    Column("profile_id", String(ID), nullable=False),
    Column("kind", String(16), nullable=False),  # event | profile
    Column("name", String(500)),  # the event's name (null for a profile record)
    Column("ts", UTCDateTime(), nullable=False),
    Column("data", Json, nullable=False),
    # pending -> sending (claimed until lease_until) -> delivered | rejected | skipped | given_up
    # | unknown; a failed attempt goes back to pending at next_attempt_at.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime()),
    Column("claim", String(40)),
    Column("code", Integer),  # the destination's code for a rejected record
    Column("message", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("workspace_id", "destination_id", "record_key"),
    # The batcher's scan: records still to send, per destination, by when they are due.
    Index(
        "ix_export_records_open",
        "workspace_id",
        "destination_id",
        "next_attempt_at",
        sqlite_where=text("status IN ('pending', 'sending')"),
        postgresql_where=text("status IN ('pending', 'sending')"),
    ),
    Index(None, "workspace_id", "flow_id", "version", "step_id", "status"),
)

element_versions = Table(
    "element_versions",
    metadata,
    # A declarative custom element (flowline/elements/definition.py), one immutable row per
    # version: editing adds a row, journeys in flight keep reading the version they started with.
    Column("workspace_id", String(64), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("element_id", String(ID), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", Json, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)
