"""Export destinations: where journeys send people's data (CleverTap, webhooks)."""
