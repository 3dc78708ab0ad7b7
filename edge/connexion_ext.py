"""What newsagg plugs into Connexion's public extension points.

- `NamedParameterValidator` (`validator_map`): the same rules as Connexion's own parameter
  validator (the spec's schemas, Draft 4, formats), but the message names the parameter
  and leaves out the schema dump, and each parameter's compiled validator is built once
  instead of on every request.
- `PreparedBearerHandler` (`security_map`): Connexion's bearer handler inspects the info
  function's signature twice per request; ours all take `(token, request)`, known once.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import OAuthResponseProblem
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


class PreparedBearerHandler(BearerSecurityHandler):
    def _get_verify_func(self, token_info_func: Any) -> Any:
        async def verify(request: Any) -> Any:
            auth_type, token = self.get_auth_header_value(request)
            if auth_type != "bearer":
                return NO_VALUE
            info = await token_info_func(token, request)
            if info is None:
                raise OAuthResponseProblem(detail="Provided token is not valid")
            return info

        return verify
