"""A page on another site must not drive the server; foreign Host names are refused."""
import pytest

from helpers import wait_for
from helpers import QUICK, SLOW


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


# ---------------------------------------------------------------- the access token of an exposed server

@pytest.fixture
def locked_client(tmp_path, tiny_mnist, make_app):
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TOKEN": "s3cret-token",
                    "ALLOWED_HOSTS": ["*"]})
    return app, app.test_client()


def every_route(app):
    """(method, path) of every route, with a made-up run id and file name where the path needs them."""
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<run_id>", "20260101-000000-000abc").replace("<name>", "curves.png")
        path = path.replace("<path:filename>", "app.js")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_without_the_token_every_route_is_401(locked_client):
    app, client = locked_client
    routes = list(every_route(app))
    assert len(routes) >= 15
    for method, path in routes:
        response = client.open(path, method=method, json={} if method in ("POST", "DELETE") else None)
        assert response.status_code == 401, (method, path)
        assert "access token" in response.get_json()["error"]
        wrong = client.open(path, method=method, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, (method, path)


def test_with_the_token_requests_work_and_the_first_visit_sets_a_cookie(locked_client):
    app, client = locked_client
    bearer = {"Authorization": "Bearer s3cret-token"}
    for method, path in every_route(app):
        response = client.open(path, method=method, headers=bearer, json={} if method in ("POST", "DELETE") else None)
        assert response.status_code != 401, (method, path)
    first = client.get("/?token=s3cret-token")
    assert first.status_code == 200 and "mnist_monitor_token_80=s3cret-token" in first.headers["Set-Cookie"]
    assert "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Strict" in first.headers["Set-Cookie"]
    assert client.get("/training_status").status_code == 200  # the cookie now carries it


def test_loopback_needs_no_token_and_other_hosts_get_one_printed(monkeypatch, tmp_path, capsys):
    import server

    served = {}
    monkeypatch.setattr("waitress.serve", lambda app, **kw: served.update(kw, app=app))
    server.main(["--runs-dir", str(tmp_path / "a")])
    assert served["app"].config["TOKEN"] is None and "?token=" not in capsys.readouterr().out
    server.main(["--host", "0.0.0.0", "--runs-dir", str(tmp_path / "b")])
    token = served["app"].config["TOKEN"]
    assert token and len(token) >= 24 and f"?token={token}" in capsys.readouterr().out
    server.main(["--host", "0.0.0.0", "--token", "chosen", "--runs-dir", str(tmp_path / "c")])
    assert served["app"].config["TOKEN"] == "chosen"


def test_origin_must_match_scheme_host_and_port(client, app):
    headers = {"Origin": "https://localhost:5000", "Host": "localhost:5000"}
    assert client.post("/start_training", json=SLOW, headers=headers).status_code == 403
    assert app.extensions["runs"].run_ids() == []


def test_every_address_printed_for_a_wildcard_host_opens_the_page(monkeypatch, tmp_path, capsys):
    import socket

    import server

    def resolve(name, port, *args, **kwargs):  # this machine's addresses, as a resolver gives them
        assert name == socket.gethostname()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))
                for ip in ("127.0.1.1", "192.0.2.17", "169.254.3.4", "192.0.2.17")] + [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::5", 0, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    served = {}
    monkeypatch.setattr("waitress.serve", lambda app, **kw: served.update(kw, app=app))
    server.main(["--host", "0.0.0.0", "--port", "5084", "--token", "sekrit", "--runs-dir", str(tmp_path / "runs")])
    printed = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines() if line.startswith("Open ")]
    assert printed == [f"http://{socket.gethostname()}:5084/?token=sekrit", "http://192.0.2.17:5084/?token=sekrit"]
    client = served["app"].test_client()
    for url in printed:  # the request goes nowhere but this process; its Host header is the printed one
        host = url.split("/")[2]
        assert client.get("/?token=sekrit", headers={"Host": host}).status_code == 200, url
    assert client.get("/?token=sekrit", headers={"Host": "0.0.0.0:5084"}).status_code == 403  # no longer printed


def test_a_new_token_in_the_address_beats_a_stale_cookie_and_each_port_has_its_own_cookie(tmp_path, tiny_mnist, make_app):
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(tiny_mnist), "TOKEN": "new-token",
                    "ALLOWED_HOSTS": ["*"]})
    client = app.test_client()
    client.set_cookie("mnist_monitor_token_5084", "old-token", domain="localhost")  # left by the last start
    headers = {"Host": "localhost:5084"}
    assert client.get("/training_status", headers=headers).status_code == 401
    first = client.get("/?token=new-token", headers=headers)  # the newly printed address
    assert first.status_code == 200 and "mnist_monitor_token_5084=new-token" in first.headers["Set-Cookie"]
    assert client.get("/training_status", headers=headers).status_code == 200  # the cookie was set anew
    other_port = client.get("/training_status", headers={"Host": "localhost:5085"})
    assert other_port.status_code == 401  # another server on this host does not get this one's token
    assert client.get("/?token=wrong", headers=headers).status_code == 200  # a wrong one beside a good cookie
    assert client.get("/training_status?token=wrong").status_code == 401
