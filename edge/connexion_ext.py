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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connexion.exceptions import OAuthResponseProblem
from connexion.lifecycle import ConnexionRequest
from connexion.security import NO_VALUE, BearerSecurityHandler
from connexion.utils import is_null, is_nullable
from connexion.validators import ParameterValidator
from connexion.validators.parameter import draft4_format_checker
from jsonschema import Draft4Validator

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
        return None if error is None else f"{param['name']}: {error.message}"


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
                info = await token_info_func(token, request, needs_admin)
                if info is None:
                    raise OAuthResponseProblem(detail="Provided token is not valid")
                return info

            return verify

    return SpecBearerHandler
