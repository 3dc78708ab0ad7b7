"""What newsagg plugs into Connexion's public extension points.

- `NamedParameterValidator` (`validator_map`): the same rules as Connexion's own parameter
  validator (the spec's schemas, Draft 4, formats), but the message names the parameter
  and leaves out the schema dump, and each parameter's compiled validator is built once
  instead of on every request.
- `bearer_handler_for(spec)` (`security_map`): a bearer handler that enforces the spec's
  admin-only marker. The spec has one bearer scheme, so a person pastes one key once in
  Swagger UI; an operation marked `x-newsagg-admin: true` needs an admin key. OpenAPI
  3.0 allows scopes only on oauth2/openIdConnect requirements, and Connexion hands a
  security handler the scheme, never the operation, so the handler looks the routed
  operation up in a table built from the spec once, and passes `admin_only` to the info
  function. It also skips Connexion's two per-request signature inspections: our info
  function's signature, `(token, request, admin_only)`, is known.
- `JSONBodyValidator` (`validator_map`, for JSON bodies): Connexion's rules (Draft 4 with
  `nullable`, `readOnly`), with a bound on nesting checked before parsing (a body nested a
  thousand deep made the parser raise RecursionError: a 500), a detail worded by
  edge.problems (never the value in bulk), nothing logged (Connexion logs each failing
  value at INFO: a webhook URL's token with it), and each schema compiled once.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from connexion.exceptions import BadRequestProblem, OAuthResponseProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.lifecycle import ConnexionRequest
from connexion.security import NO_VALUE, BearerSecurityHandler
from connexion.utils import is_null, is_nullable
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from connexion.validators.parameter import draft4_format_checker
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from starlette.types import Scope

from edge.problems import quoted, validation_detail

# id(parameter spec) -> (the spec, kept alive so its id stays unique; its validator)
_compiled: dict[int, tuple[dict[str, Any], Draft4Validator]] = {}


def _validator(param: dict[str, Any]) -> Draft4Validator:
    entry = _compiled.get(id(param))
    if entry is None:
        schema = param.get("schema", param)
        entry = (param, Draft4Validator(schema, format_checker=draft4_format_checker))
        _compiled[id(param)] = entry
    return entry[1]


class NamedParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            if param.get("required"):
                return f"Missing {parameter_type} parameter '{param['name']}'"
            return None
        error = next(iter(_validator(param).iter_errors(value)), None)
        return None if error is None else validation_detail(param["name"], error)

    def validate_query_parameter_list(
        self, request: ConnexionRequest, security_params: list[str] | None = None
    ) -> list[str]:
        """The unknown query parameters, each name cut short (the 400 lists them)."""
        unknown = sorted(super().validate_query_parameter_list(request, security_params))
        return [quoted(name) for name in unknown[:3]] + (["..."] if len(unknown) > 3 else [])


MAX_JSON_DEPTH = 32  # levels of arrays and objects in a request body (ours need 2)
_JSON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_BRACKETS = re.compile(rb"[][{}]")


def nested_deeper_than(raw: bytes, bound: int) -> bool:
    """Whether the JSON text `raw` opens more than `bound` arrays and objects inside each
    other (brackets inside strings are text). Linear, and no recursion at any depth."""
    depth = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRINGS.sub(b"", raw)):
        if bracket in b"[{":
            depth += 1
            if depth > bound:
                return True
        else:
            depth -= 1
    return False


# id(body schema) -> (the schema, kept alive so its id stays unique; its validator)
_body_validators: dict[int, tuple[dict[str, Any], Draft4Validator]] = {}


class JSONBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        # JSON is UTF-8 (RFC 8259 8.1; application/json has no charset parameter).
        text = raw.decode("utf-8")  # UnicodeDecodeError: a 400 (edge.app)
        if nested_deeper_than(raw, MAX_JSON_DEPTH):
            raise BadRequestProblem(
                detail=f"The request body is nested deeper than {MAX_JSON_DEPTH} levels."
            )
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:  # its message quotes no input
            raise BadRequestProblem(detail=f"The request body is not valid JSON: {error}") from None
        except ValueError:  # an integer past Python's 4,300 digits
            raise BadRequestProblem(detail="The request body holds a number too long.") from None

    def _validate(self, body: Any) -> None:
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="Request body must not be empty")
        entry = _body_validators.get(id(self._schema))
        if entry is None:
            checker = Draft4Validator.FORMAT_CHECKER
            entry = (self._schema, Draft4RequestValidator(self._schema, format_checker=checker))
            _body_validators[id(self._schema)] = entry
        error = best_match(entry[1].iter_errors(body))
        if error is not None:
            raise BadRequestProblem(detail=validation_detail(None, error))


ADMIN_MARKER = "x-newsagg-admin"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def routed_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(the id Connexion routes it under, HTTP method, the operation) for each operation."""
    for path_item in spec["paths"].values():
        for method, operation in path_item.items():
            if method in HTTP_METHODS:
                # As Connexion's resolver names it when the operation sets a controller.
                controller = operation.get("x-openapi-router-controller")
                routed = operation["operationId"]
                yield (f"{controller}.{routed}" if controller else routed), method, operation


def admin_only_operations(spec: dict[str, Any]) -> dict[str, bool]:
    """Each operation, by the id Connexion routes it under, -> whether it is admin-only."""
    return {
        routed: operation.get(ADMIN_MARKER, False) is True
        for routed, _method, operation in routed_operations(spec)
    }


# Where the bearer check leaves why it refused a key (raised again by the rate limiter).
BEARER_REFUSAL = "newsagg_bearer_refusal"


def bearer_handler_for(spec: dict[str, Any]) -> type[BearerSecurityHandler]:
    """A bearer handler class (Connexion instantiates it itself) bound to this spec."""
    admin_only = admin_only_operations(spec)

    class SpecBearerHandler(BearerSecurityHandler):
        def _get_verify_func(self, token_info_func: Any) -> Any:
            async def verify(request: ConnexionRequest) -> Any:
                auth_type, token = self.get_auth_header_value(request)
                if auth_type != "bearer":
                    return NO_VALUE
                routing = request.scope.get("extensions", {}).get("connexion_routing", {})
                # Fail closed: an operation the table does not know is treated as admin-only.
                needs_admin = admin_only.get(routing.get("operation_id"), True)
                try:
                    info = await token_info_func(token, request, needs_admin)
                    if info is None:
                        raise OAuthResponseProblem(detail="Provided token is not valid")
                except Exception as refusal:
                    # Where an operation may also be called without a key (`{}` among its
                    # security alternatives), Connexion would go on to that one: a key that
                    # was sent and refused (or could not be checked) must still decide.
                    request.scope["extensions"][BEARER_REFUSAL] = refusal
                    raise
                return info

            return verify

    return SpecBearerHandler
