"""The upstream simulator: NewsAPI, the Guardian and Hacker News on loopback, for demo mode
and tests. Product code, but not an upstream client: it lives beside `providers/`."""

from simulator.server import FAULT_KINDS, Fault, Simulator

__all__ = ["FAULT_KINDS", "Fault", "Simulator"]
