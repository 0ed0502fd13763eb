"""Temporal workflows: the deterministic journey interpreter, and the client side that starts them."""
