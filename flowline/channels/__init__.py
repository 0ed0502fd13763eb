"""Channels: how a message leaves Flowline (in-app inbox, webhooks; email/SMS/push to come)."""
