"""The service against its own contract: the spec is valid, the app loads it, and
schemathesis (every check, every phase, stateful over the OpenAPI links) finds nothing."""

from __future__ import annotations

import re

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate

from newsagg.app import SPEC_PATH, create_app, resolve_handler


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def test_spec_is_valid_openapi_303(spec):
    validate(spec)
    # Connexion 3.3 refuses 3.1 at start-up although the validator accepts it.
    assert re.fullmatch(r"3\.0\.\d+", spec["openapi"])


def test_every_operation_resolves_to_a_handler(spec):
    for path_item in spec["paths"].values():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
            handler = resolve_handler(
                f"{operation['x-openapi-router-controller']}.{operation['operationId']}"
            )
            assert callable(handler), operation["operationId"]


def test_every_error_response_is_problem_json(spec):
    responses = spec["components"]["responses"]
    for path_item in spec["paths"].values():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    ref = response["$ref"].rsplit("/", 1)[-1]
                    assert list(responses[ref]["content"]) == ["application/problem+json"]


def test_the_app_serves_its_spec_and_swagger_ui(client):
    served = client.get("/openapi.json").json()
    assert served["info"]["title"] == "newsagg"
    assert client.get("/ui/").status_code == 200


@pytest.fixture
def contract(service, admin_headers):
    app = create_app(service=service)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.headers = admin_headers  # every operation, admin ones included
    return schema


schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_operations_conform_to_the_contract(case, admin_headers):
    case.call_and_validate(headers=admin_headers)


def test_key_lifecycle_through_links_conforms(contract):
    machine = contract.as_state_machine()
    machine.run(
        settings=hypothesis_settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
