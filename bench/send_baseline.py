"""The activity of bench/sends.py's baseline: each path's provider call, without journey or ledger.

Outside bench/sends.py so that the script stays small; the workflow that runs it is in
bench/baseline_workflow.py.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity


class BaselineSends:
    """The baseline's one activity: the provider call of each path, without journey or ledger."""

    def __init__(self, smtp: Any, http: Any, sink_url: str, secret: str) -> None:
        self.smtp, self.http, self.sink_url, self.secret = smtp, http, sink_url, secret

    @activity.defn(name="bench_send")
    async def send(self, kind: str, key: str) -> str:
        from flowline.channels import webhook

        first_name, event = f"Ada {key[-6:]}", {"name": "bench", "plan": "pro"}
        if kind == "email":
            from flowline.channels.config import ChannelSettings
            from flowline.channels.providers import OutgoingMessage
            from flowline.channels.registry import provider_for

            provider = provider_for("email", ChannelSettings(email=self.smtp), self.http)
            assert provider is not None
            words = f"{first_name}, thanks for {event['name']} on the {event['plan']} plan."
            message = OutgoingMessage(
                channel="email",
                idempotency_key=key,
                to=f"{key}@bench.test",
                subject=f"Welcome, {first_name}",
                text=f"Hello {words}",
                html=f"<p>Hello <b>{first_name}</b>{words[len(first_name) :]}</p>",
            )
            return (await provider.send(message)).provider_message_id or ""
        payload = {
            "flow": {"id": "bench-http", "version": 1, "name": "Sends benchmark (http)"},
            "step": {"id": "send", "iteration": 0},
            "journey": {"id": key},
            "profile": {"id": key, "first_name": first_name, "email": f"{key}@bench.test"},
            "event": event,
            "data": {"greeting": f"Hello {first_name}", "plan": "pro"},
        }
        body = webhook.encode(payload)
        headers = {
            "Content-Type": "application/json",
            webhook.SIGNATURE_HEADER: webhook.sign(self.secret, body),
            webhook.IDEMPOTENCY_HEADER: key,
        }
        response = await self.http.post(self.sink_url, content=body, headers=headers)
        response.raise_for_status()
        return key
