"""The harvester's records (newsagg.harvest): each provider's schedule and progress, and the
leases that let one harvester run across every process and instance, their expiry on the
store's clock."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from newsagg.store.dialect import Repository


@dataclass(frozen=True, slots=True)
class HarvestState:
    """One provider's harvest schedule and progress; times in microseconds since the epoch."""

    provider: str
    high_water_us: int | None = None  # the newest story harvested so far
    covered_from_us: int | None = None  # since when the harvest has taken everything
    last_run_us: int | None = None
    last_success_us: int | None = None
    last_error_code: str | None = None  # of the last run, None when it succeeded
    last_error_message: str | None = None
    next_run_us: int | None = None  # None: due now
    interval_ms: int | None = None  # the current interval (None: the schedule's start)
    failures: int = 0  # consecutive failed runs
    category_cursor: int = 0  # NewsAPI: the index of the category whose turn is next
    categories: Mapping[str, int] = field(default_factory=dict)  # category -> harvested at
    added_last: int = 0  # articles the last run added


# The columns of harvest_state: HarvestState's fields, in order (categories as JSON).
HARVEST_FIELDS = tuple(column.name for column in fields(HarvestState))
HARVEST_COLUMNS = ", ".join(HARVEST_FIELDS)


def _state(row: Sequence[Any]) -> HarvestState:
    return HarvestState(*row[:11], json.loads(row[11]), row[12])


class Leases(Repository):
    def harvest_states(self) -> dict[str, HarvestState]:
        """Every provider's harvest state, by provider."""
        rows = self.db.read(f"SELECT {HARVEST_COLUMNS} FROM harvest_state")
        return {row[0]: _state(row) for row in rows}

    def harvest_save(self, state: HarvestState) -> None:
        """Store a provider's harvest state, replacing the one stored."""
        values = [getattr(state, name) for name in HARVEST_FIELDS]
        values[11] = json.dumps(dict(state.categories), sort_keys=True)
        with self.db.transaction() as db:
            db.execute(
                f"INSERT INTO harvest_state({HARVEST_COLUMNS})"
                f" VALUES ({', '.join([self.db.param] * len(values))})"
                " ON CONFLICT (provider) DO UPDATE SET "
                + ", ".join(f"{name} = excluded.{name}" for name in HARVEST_FIELDS[1:]),
                tuple(values),
            )

    def lease_take(self, name: str, holder: str, seconds: float) -> bool:
        """Take the lease `name` for `holder`, or renew it, for `seconds` from now: granted
        when it is free, expired or already `holder`'s. One statement, atomic by itself
        on PostgreSQL (the conflicting row is locked while its WHERE is judged)."""
        p, now = self.db.param, self.db.now
        with self.db.transaction() as db:
            self.db.take_turns(db, None)
            row = db.execute(
                "INSERT INTO harvest_leases(name, holder, expires_us)"
                f" VALUES ({p}, {p}, {now} + {p}) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_us = excluded.expires_us"
                " WHERE harvest_leases.holder = excluded.holder"
                f" OR harvest_leases.expires_us <= {now} RETURNING holder",
                (name, holder, round(seconds * 1e6)),
            ).fetchone()
            return row is not None

    def lease_release(self, name: str, holder: str) -> None:
        """Give up the lease if `holder` holds it, so that another may take it at once."""
        p = self.db.param
        with self.db.transaction() as db:
            db.execute(
                f"DELETE FROM harvest_leases WHERE name = {p} AND holder = {p}", (name, holder)
            )
