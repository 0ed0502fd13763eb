"""The HTTP API (FastAPI): flows, profiles, events, journeys, inbox."""
