"""Sending events to customer workflows: the one signal call, the outbox relay, usage crossings."""
