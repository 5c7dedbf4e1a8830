"""Request guard and response headers: what keeps other sites and foreign host names out.

- Host: only the names in ``ALLOWED_HOSTS`` (DNS rebinding: a foreign page whose name resolves
  to 127.0.0.1 still sends its own Host); ``"*"`` turns the check off.
- Writes (POST, PUT, PATCH, DELETE): an ``Origin`` header, when sent, must equal this server's
  own origin (scheme, host and port); ``Sec-Fetch-Site: cross-site`` is refused; the body must be JSON (an HTML form on
  another site cannot send that without a CORS preflight, which this server never grants).
- An access token, when the app has one (``TOKEN``; the server makes one whenever it listens on a
  non-loopback address): every request must carry it, as ``Authorization: Bearer <token>``, as the
  cookie the page gets on its first visit to ``/?token=<token>``, or as that query parameter;
  else 401. Tokens are compared in constant time.
- In a class (``--class``), the same ways carry the teacher's token (``TOKEN``) or a student's (the
  class's roster knows them only hashed); the identity found is ``g.identity`` (``web.access``
  says what it may do). Only the page, its static files, ``GET /config`` and ``POST /class/join``
  answer without one, on a loopback address too. The cookie is set only by joining and by
  ``POST /class/signin`` (the page asks "continue as ...?" before a link replaces who a browser is).
- Every response: a strict Content-Security-Policy (only this server's own scripts and styles),
  no framing, no MIME sniffing, no referrer.
"""
from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from flask import Flask, Response, g, request

from mnist_monitor.export.run_zip import MAX_ZIP_BYTES
from mnist_monitor.web.access import TEACHER, Identity
from mnist_monitor.web.errors import Forbidden, Unauthorized, UnsupportedMediaType

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "mnist_monitor_token"
TOKEN_COOKIE_SECONDS = 30 * 24 * 3600  # a month: the page keeps working after the first visit
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The one route whose body is not JSON: a run's zip, streamed to a temporary file. Cross-site requests
# stay closed: an HTML form cannot send application/zip, and a script from elsewhere is preflighted.
UPLOAD, UPLOAD_BYTES = ("POST", "/runs/import"), MAX_ZIP_BYTES
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "frame-ancestors 'none'")


def host_name(value: str) -> str:
    """'localhost:5000' -> 'localhost', '[::1]:5000' -> '::1'."""
    try:
        return (urlsplit("//" + value).hostname or "").lower()
    except ValueError:
        return ""


def token_cookie() -> str:
    """The cookie's name carries the port: browsers share cookies across the ports of a host, so two
    servers on one machine would overwrite each other's token (and any service there would get it)."""
    port = urlsplit("//" + request.host).port if host_name(request.host) else None
    return f"{TOKEN_COOKIE}_{port or (443 if request.scheme == 'https' else 80)}"


def presented_tokens() -> list[tuple[str, str]]:
    """(token, how it came) for each way the request carries one: the header, the address (a newly
    printed address beats a cookie left by an earlier start), the cookie."""
    found = []
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        found.append((header[len("Bearer "):].strip(), "header"))
    if request.args.get("token"):
        found.append((request.args["token"], "query"))
    if request.cookies.get(token_cookie()):
        found.append((request.cookies[token_cookie()], "cookie"))
    return found


def check_token(token: str) -> None:
    """Unauthorized unless one of the tokens the request carries is ``token`` (compared in constant time)."""
    valid = [how for presented, how in presented_tokens() if hmac.compare_digest(presented.encode(), token.encode())]
    if not valid:
        raise Unauthorized("this server needs its access token: open the address it printed when it started "
                           "(http://<host>:<port>/?token=...), or send 'Authorization: Bearer <token>'")
    g.token_from_query = "query" in valid


OPEN_IN_CLASS = {("GET", "info.index"), ("HEAD", "info.index"), ("GET", "static"), ("HEAD", "static"),
                 ("GET", "info.form_settings_route"), ("HEAD", "info.form_settings_route"), ("POST", "classroom.join")}


def identify(teacher_token: str, roster) -> tuple[Identity, str] | None:
    """(who, their token) for the first token the request carries that is the teacher's or a
    present student's; None if none is."""
    for presented, _how in presented_tokens():
        if hmac.compare_digest(presented.encode(), teacher_token.encode()):
            return TEACHER, presented
        student = roster.identify(presented)
        if student is not None:
            return Identity("student", student.id, student.name), presented
    return None


def check_member(teacher_token: str, roster) -> None:
    """In a class: g.identity and g.token of the member the request comes from; 401 unless the
    route is one that answers without a token."""
    found = identify(teacher_token, roster)
    g.token_refused = found is None and bool(presented_tokens())  # a link made anew, a student removed
    if found is not None:
        g.identity, g.token = found
    elif (request.method, request.endpoint) not in OPEN_IN_CLASS:
        raise Unauthorized("this class's server needs your token: open the page and join with the class code, "
                           "open your personal link, or send 'Authorization: Bearer <token>'")


def set_token_cookie(response: Response, token: str) -> None:
    response.set_cookie(token_cookie(), token, max_age=TOKEN_COOKIE_SECONDS, httponly=True, samesite="Strict")


def init_app(app: Flask) -> None:
    allowed_hosts = {h.lower() for h in app.config.get("ALLOWED_HOSTS", LOCAL_HOSTS)}
    token = app.config.get("TOKEN")
    roster = app.extensions.get("class")

    @app.before_request
    def guard():
        if roster is not None:
            check_member(token, roster)
        elif token:
            check_token(token)
        if "*" not in allowed_hosts and host_name(request.host) not in allowed_hosts:
            raise Forbidden(f"host {request.host!r} is not allowed; start the server with --allowed-host")
        if request.method in WRITE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
                raise Forbidden(f"cross-origin request from {origin!r} refused")
            if request.headers.get("Sec-Fetch-Site") == "cross-site":
                raise Forbidden("cross-site request refused")
            if (request.method, request.path) == UPLOAD:  # a run's zip: a type no HTML form can send
                request.max_content_length = UPLOAD_BYTES
                if request.mimetype != "application/zip":
                    raise UnsupportedMediaType("Content-Type must be application/zip: the body is a run's export.zip")
            elif request.mimetype != "application/json" and (request.method != "DELETE" or request.content_length):
                raise UnsupportedMediaType("Content-Type must be application/json")

    @app.after_request
    def headers(response: Response):
        if token and g.get("token_from_query") and roster is None:  # the first visit: the page keeps it in a cookie
            set_token_cookie(response, token)
        if roster is not None and g.get("identity") is not None:  # a page open in another tab sees a switch
            response.headers["X-Class-Member"] = f"{g.identity.id} {quote(g.identity.name)}"  # (and a rename)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
