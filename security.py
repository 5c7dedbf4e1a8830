"""Request guard and response headers: what keeps other sites and foreign host names out.

- Host: only the names in ``ALLOWED_HOSTS`` (DNS rebinding: a foreign page whose name resolves
  to 127.0.0.1 still sends its own Host); ``"*"`` turns the check off.
- Writes (POST, PUT, PATCH, DELETE): an ``Origin`` header, when sent, must equal this server's
  own origin (scheme, host and port); ``Sec-Fetch-Site: cross-site`` is refused; the body must be JSON (an HTML form on
  another site cannot send that without a CORS preflight, which this server never grants).
- Every response: a strict Content-Security-Policy (only this server's own scripts and styles),
  no framing, no MIME sniffing, no referrer.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

from errors import Forbidden, UnsupportedMediaType

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "frame-ancestors 'none'")


def host_name(value: str) -> str:
    """'localhost:5000' -> 'localhost', '[::1]:5000' -> '::1'."""
    try:
        return (urlsplit("//" + value).hostname or "").lower()
    except ValueError:
        return ""


def init_app(app: Flask) -> None:
    allowed_hosts = {h.lower() for h in app.config.get("ALLOWED_HOSTS", LOCAL_HOSTS)}

    @app.before_request
    def guard():
        if "*" not in allowed_hosts and host_name(request.host) not in allowed_hosts:
            raise Forbidden(f"host {request.host!r} is not allowed; start the server with --allowed-host")
        if request.method in WRITE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
                raise Forbidden(f"cross-origin request from {origin!r} refused")
            if request.headers.get("Sec-Fetch-Site") == "cross-site":
                raise Forbidden("cross-site request refused")
            if request.mimetype != "application/json" and (request.method != "DELETE" or request.content_length):
                raise UnsupportedMediaType("Content-Type must be application/json")

    @app.after_request
    def headers(response: Response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
