"""Saved searches and what they push: matching, webhooks, event streams, feeds."""
