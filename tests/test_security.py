"""A page on another site must not drive the server; foreign Host names are refused."""
import pytest

from conftest import wait_for
from conftest import QUICK


@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "127.0.0.1.evil.example", "10.0.0.5:5000"])
def test_foreign_host_headers_are_refused(client, host):
    response = client.get("/training_status", headers={"Host": host})
    assert response.status_code == 403 and "not allowed" in response.get_json()["error"]
    assert client.post("/start_training", json=QUICK, headers={"Host": host}).status_code == 403


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000"])
def test_local_host_names_are_served(client, host):
    assert client.get("/training_status", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost:9999", "null", "https://127.0.0.1"])
def test_foreign_origin_cannot_start_or_stop(client, app, origin):
    headers = {"Origin": origin, "Host": "localhost:5000"}
    response = client.post("/start_training", json=QUICK, headers=headers)
    assert response.status_code == 403 and "cross-origin" in response.get_json()["error"]
    assert client.post("/stop_training", json={}, headers=headers).status_code == 403
    assert app.extensions["runs"].run_ids() == []


def test_cross_site_fetch_metadata_is_refused(client, app):
    response = client.post("/start_training", json=QUICK, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and app.extensions["runs"].run_ids() == []


def test_form_posts_from_other_sites_are_refused_by_content_type(client, app):
    # an HTML form on any site can send these content types without a CORS preflight
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]:
        response = client.post("/start_training", data='{"epochs": 1}', headers={"Content-Type": content_type})
        assert response.status_code == 415
    assert app.extensions["runs"].run_ids() == []


def test_same_origin_requests_work(client):
    headers = {"Origin": "http://localhost:5000", "Host": "localhost:5000", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/start_training", json=QUICK, headers=headers)
    assert response.status_code == 202
    wait_for(lambda: client.get("/training_status").get_json()["state"] == "finished")


def test_security_headers_are_set(client):
    response = client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_default_bind_is_loopback_and_other_binds_warn(monkeypatch, caplog, tmp_path):
    import server

    assert server.build_parser().parse_args([]).host == "127.0.0.1"
    served = {}
    monkeypatch.setattr("waitress.serve", lambda app, **kw: served.update(kw, app=app))
    with caplog.at_level("WARNING"):
        server.main(["--host", "0.0.0.0", "--port", "5999", "--runs-dir", str(tmp_path / "runs")])
    assert served["host"] == "0.0.0.0" and any("anyone who can reach" in r.message for r in caplog.records)
