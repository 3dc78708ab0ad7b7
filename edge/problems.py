"""The one place where failures become HTTP answers (problem+json, RFC 9457), and where
their `detail` is worded: a sentence that names what was wrong and the limit it broke,
quoting at most a short prefix of the value (a detail is logged, shown and stored by
clients; it must not grow with the input, nor hand back what a client sent in bulk)."""

from __future__ import annotations

import reprlib
from typing import Any

from connexion.lifecycle import ConnexionResponse
from connexion.problem import problem
from jsonschema.exceptions import ValidationError

from newsagg.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceError,
    Unavailable,
)

# Kind of failure -> (status, title). Order matters only for subclasses (first match wins).
STATUS_OF: tuple[tuple[type[ServiceError], int, str], ...] = (
    (InvalidInput, 400, "Bad Request"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (RateLimited, 429, "Too Many Requests"),
    (Unavailable, 503, "Service Unavailable"),
)

QUOTED_CHARACTERS = 40  # of a value a detail quotes, at most
DETAIL_CHARACTERS = 200  # of a whole detail, at most


class _Prefix(reprlib.Repr):
    """repr() of a value cut to a short prefix: strings and numbers to their first
    characters, containers to their first few items, nesting to two levels."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxother = 2, 20
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 3
        self.maxstring = self.maxlong = QUOTED_CHARACTERS

    def repr_str(self, x: str, level: int) -> str:
        return repr(x) if len(x) <= self.maxstring else repr(x[: self.maxstring]) + "..."

    def repr_int(self, x: int, level: int) -> str:
        # Digits first: repr() of an int past sys.get_int_max_str_digits raises.
        if x.bit_length() > 3 * self.maxlong:
            return "a number too long to show"
        text = repr(x)
        return text if len(text) <= self.maxlong else text[: self.maxlong] + "..."


quoted = _Prefix().repr


def bounded(detail: str) -> str:
    """`detail` cut to DETAIL_CHARACTERS: the net under every message worded elsewhere."""
    return detail if len(detail) <= DETAIL_CHARACTERS else detail[: DETAIL_CHARACTERS - 3] + "..."


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def validation_detail(name: str | None, error: ValidationError) -> str:
    """A JSON Schema failure in a few words: `q: longer than 500 characters`. `name` is the
    parameter's (None for a body, whose failing field is the error's path)."""
    where = "/".join(str(part) for part in (name, *error.absolute_path) if part is not None)
    keyword, limit, instance = error.validator, error.validator_value, error.instance
    if keyword == "maxLength":
        what = f"longer than {_plural(limit, 'character')}"
    elif keyword == "minLength":
        what = "must not be empty" if limit == 1 else f"shorter than {_plural(limit, 'character')}"
    elif keyword == "maxItems":
        what = f"more than {_plural(limit, 'item')}"
    elif keyword == "minItems":
        what = f"fewer than {_plural(limit, 'item')}"
    elif keyword == "maxProperties":
        what = f"more than {_plural(limit, 'field')}"
    elif keyword == "minProperties":
        what = "must not be empty" if limit == 1 else f"fewer than {_plural(limit, 'field')}"
    elif keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        unknown = [field for field in instance if field not in known]
        shown = ", ".join(quoted(field) for field in unknown[:3])
        what = f"unknown field{'s' if len(unknown) > 1 else ''} {shown}"
        what += f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
    else:
        # jsonschema's own words (`'x' is not one of [...]`), quoting the value cut short.
        full = _full_repr(instance)
        what = error.message.replace(full, quoted(instance)) if full else error.message
    return bounded(f"{where or 'body'}: {what}")


def _full_repr(value: Any) -> str | None:
    try:
        return repr(value)
    except ValueError:  # an int too long to print: jsonschema's message did not quote it
        return None


def problem_for(error: ServiceError) -> ConnexionResponse:
    """The problem+json answer for a core failure; Retry-After when the core gave one."""
    status, title = next(
        ((s, t) for kind, s, t in STATUS_OF if isinstance(error, kind)),
        (500, "Internal Server Error"),
    )
    headers = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    return problem(status, title, bounded(error.detail), headers=headers or None)
