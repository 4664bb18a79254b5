"""``/openapi.json`` describes the API truthfully: schemathesis generates requests
from it and checks every answer (no 5xx; status, content type, headers and body
as documented; auth really enforced)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from test_api import TOKEN, build_center, make_folder

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_app(tmp_path, monkeypatch):
    monkeypatch.setenv("ADHERENCE_API_TOKEN", TOKEN)
    c = build_center(make_folder(tmp_path, api_token=TOKEN))
    yield c.app
    c.engine.close()


def test_spec_is_openapi_3_and_lists_every_api_route(api_app):
    spec = api_app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = set()
    for rule in api_app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "The configured auth.api_token."}
    exc = spec["paths"]["/api/exceptions"]["get"]["responses"]
    assert {"application/json", "text/csv"} <= set(exc["200"]["content"])
    assert exc["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_api_conforms_to_its_openapi(api_app):
    # Driven through schemathesis' schema API rather than its pytest plugin: the plugin reaches into
    # pytest internals (``Node._nodeid``, gone in pytest 9.2), while this works with any pytest.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def conforms(case):
            # Filters have rules across parameters that OpenAPI 3.0 cannot state (date xor from/to,
            # from <= to, an agent must exist), so a schema-valid request may rightly get a documented
            # 400: every other check (no 5xx, documented status/content type/headers, body schema,
            # auth enforced) applies.
            case.call_and_validate(headers=AUTH, excluded_checks=[schemathesis.checks.positive_data_acceptance])

        try:
            conforms()
        except Exception as exc:
            exc.add_note(f"operation: {operation.label}")
            raise
