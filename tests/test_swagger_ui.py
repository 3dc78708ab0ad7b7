"""What a newcomer meets in Swagger UI (/ui/): the spec as the app serves it.

"Try it out" pre-fills every parameter's `example`, so the examples are a first request
and must find something in demo mode; the Authorize dialog shows one box per security
scheme, so there is one scheme and one key pasted once works for every operation it may
use. (The browser itself is checked by hand, see README; these are the facts it shows.)
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def served(client) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _parameters(spec: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    refs = spec["components"]["parameters"]
    return [
        refs[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in operation["parameters"]
    ]


def test_list_articles_parameter_examples_sent_together_find_articles(served, client, user_headers):
    # The client fixture's providers are the demo simulator, as in `newsagg serve --demo`.
    params = _parameters(served, served["paths"]["/articles"]["get"])
    query = {p["name"]: p["example"] for p in params if p["in"] == "query" and "example" in p}
    headers = {p["name"]: p["example"] for p in params if p["in"] == "header" and "example" in p}
    assert query, "listArticles has no parameter examples"
    response = client.get("/articles", params=query, headers=user_headers | headers)
    assert response.status_code == 200, response.text
    assert response.json()["count"] >= 1


def test_no_parameter_example_is_a_fixed_instant(served):
    # The demo data is relative to now: a fixed date in an example goes stale.
    for item in served["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                for param in _parameters(served, {"parameters": operation.get("parameters", [])}):
                    if param["schema"].get("format") in ("date", "date-time"):
                        assert "example" not in param, param["name"]


def test_one_security_scheme_so_one_key_pasted_once_works(served):
    schemes = served["components"]["securitySchemes"]
    assert list(schemes) == ["bearerAuth"]
    assert served["security"] == [{"bearerAuth": []}]
    for item in served["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                # Inherit the one scheme, or need none (GET /health), or take it or a token
                # of the URL's own (the event stream, for a browser's EventSource).
                assert operation.get("security", served["security"]) in (
                    [],
                    [{"bearerAuth": []}],
                    [{"bearerAuth": []}, {}],
                ), operation["operationId"]


def test_the_first_saved_search_example_creates_the_search_the_id_examples_name(
    served, client, user_headers
):
    # Swagger UI pre-fills the first example; a newcomer's first search gets id 1, the
    # example of every {search_id}.
    create = served["paths"]["/searches"]["post"]
    body = next(iter(create["requestBody"]["content"]["application/json"]["examples"].values()))
    made = client.post("/searches", json=body["value"], headers=user_headers)
    assert made.status_code == 201, made.text
    example_id = served["components"]["parameters"]["SearchId"]["example"]
    assert made.json()["id"] == example_id
    assert client.get(f"/searches/{example_id}", headers=user_headers).status_code == 200
