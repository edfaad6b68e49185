"""WSGI app the integration tests drive through real Gunicorn workers.

Routes:
  GET  /               200 "hello"
  GET  /status/<code>  an empty response with that status code
  GET  /sleep/<ms>     sleeps that many milliseconds, then 200 "slept"
  POST /echo           200 with the request body's length in bytes as text
  GET  /error          raises, so Gunicorn itself answers 500
  anything else        404
"""

import time
from http import HTTPStatus


def _reason(code):
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _respond(start_response, code, body=b""):
    start_response(
        f"{code} {_reason(code)}",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")

    if path == "/":
        return _respond(start_response, 200, b"hello")

    if path.startswith("/status/"):
        code = path[len("/status/"):]
        if code.isdigit() and 100 <= int(code) <= 599:
            return _respond(start_response, int(code))
        return _respond(start_response, 404)

    if path.startswith("/sleep/"):
        ms = path[len("/sleep/"):]
        if ms.isdigit():
            time.sleep(int(ms) / 1000)
            return _respond(start_response, 200, b"slept")
        return _respond(start_response, 404)

    if path == "/echo" and method == "POST":
        body = _read_body(environ)
        return _respond(start_response, 200, str(len(body)).encode())

    if path == "/error":
        raise RuntimeError("requested failure")

    return _respond(start_response, 404)
