"""GET /openapi.json: a valid OpenAPI 3.1 document of exactly the app's routes, whose schemas the
real answers match (the fuzzing against a live server is in integration/test_fuzz.py)."""
import re

import jsonschema
import pytest
from openapi_spec_validator import validate

from helpers import fake_run


def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def routes(app) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every rule of the URL map: '<path:filename>' -> '{filename}'."""
    return {(method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
            for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_document_is_valid_openapi_3_1(client):
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any error against the OpenAPI 3.1 meta-schema


def test_every_route_is_documented_and_every_documented_route_exists(app, client):
    doc = document(client)
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == routes(app)


def test_every_operation_documents_its_errors_and_every_object_is_closed(client):
    doc = document(client)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"401", "403"} <= codes, (method, path)  # a token, a foreign Host
            if method in ("post", "delete"):
                assert "415" in codes, (method, path)
            if "{run_id}" in path:
                assert "404" in codes, (method, path)
    def closed(schema, where):
        if isinstance(schema, dict):
            if schema.get("type") == "object" and "properties" in schema:
                assert "additionalProperties" in schema and "required" in schema, where
            for key, value in schema.items():
                closed(value, f"{where}.{key}")
        elif isinstance(schema, list):
            for i, value in enumerate(schema):
                closed(value, f"{where}[{i}]")
    closed(doc, "document")
    body = doc["components"]["schemas"]["StartBody"]
    assert body["additionalProperties"] is False and "queue" in body["properties"]
    assert body["properties"]["epochs"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 3}


def answer_schema(doc: dict, path: str, method: str = "get", code: str = "200") -> dict:
    content = doc["paths"][path][method]["responses"][code]["content"]
    return {**content["application/json"]["schema"], "components": doc["components"]}


def check(doc, path, answer, method="get", code="200"):
    jsonschema.Draft202012Validator(answer_schema(doc, path, method, code)).validate(answer)


def test_real_answers_match_the_document(trained):
    client, run_id = trained
    doc = document(client)
    check(doc, "/training_status", client.get("/training_status").get_json())
    check(doc, "/runs/{run_id}", client.get(f"/runs/{run_id}").get_json())
    check(doc, "/runs", client.get("/runs").get_json())
    check(doc, "/runs/{run_id}/config", client.get(f"/runs/{run_id}/config").get_json())
    check(doc, "/runs/{run_id}/metrics", client.get(f"/runs/{run_id}/metrics").get_json())
    check(doc, "/config", client.get("/config").get_json())
    check(doc, "/model_info", client.get("/model_info?kernels=4,8,8,8").get_json())
    answer = client.post("/predict", json={"test_index": 3, "layers": True, "run_id": run_id}).get_json()
    check(doc, "/predict", answer, "post")
    check(doc, "/runs/{run_id}/meta", client.post(f"/runs/{run_id}/meta", json={"note": "x"}).get_json(), "post")
    error = client.get("/runs/20200101-000000-000abc")
    assert error.status_code == 404
    check(doc, "/runs/{run_id}", error.get_json(), code="404")


def test_an_idle_server_and_a_queued_or_broken_run_match_the_document(app, client):
    doc = document(client)
    check(doc, "/training_status", client.get("/training_status").get_json())
    store = app.extensions["runs"]
    queued = fake_run(store, "queued", models=2)
    broken = fake_run(store, "finished")
    (store.run(broken).path / "status.json").write_text("[1]")
    for run_id in (queued, broken):
        check(doc, "/runs/{run_id}", client.get(f"/runs/{run_id}").get_json())
    check(doc, "/runs", client.get("/runs").get_json())


@pytest.mark.parametrize("path", ["/runs/{run_id}", "/training_status"])
def test_a_field_the_status_record_gains_must_be_documented(app, client, path):
    """The run view's keys come from the status record: an answer with a key the record does not
    have fails the document's schema (so a new field cannot be answered without being described)."""
    doc = document(client)
    run_id = fake_run(app.extensions["runs"])
    answer = client.get(f"/runs/{run_id}" if "run_id" in path else "/training_status").get_json()
    check(doc, path, answer)  # as answered: valid
    with pytest.raises(jsonschema.ValidationError):
        check(doc, path, answer | {"surprise": 1})


def test_conditional_gets_document_their_304(client):
    doc = document(client)
    for path in ("/training_status", "/runs", "/runs/{run_id}", "/runs/{run_id}/metrics", "/runs/{run_id}/files/{name}"):
        assert "304" in doc["paths"][path]["get"]["responses"], path
    etag = client.get("/training_status").headers["ETag"]
    assert client.get("/training_status", headers={"If-None-Match": etag}).status_code == 304
