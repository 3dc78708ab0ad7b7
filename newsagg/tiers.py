"""The tiers of API keys: vocabulary that keys, settings (a limit per tier) and budgets
share. Imports nothing of ours, so that each of them can."""

from __future__ import annotations

from typing import Literal, get_args

Tier = Literal["basic", "premium", "unlimited"]
TIERS: tuple[Tier, ...] = get_args(Tier)
