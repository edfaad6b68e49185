"""WSGI app for the HTTP fidelity scenarios: responses of known size, framing and timing.

Routes:
  GET  /                  200 "hello"
  GET  /sleep/<ms>        sleeps that many milliseconds, then 200 "slept"
  GET  /bytes/<n>         200 with n bytes and a Content-Length, yielded in 64 KiB pieces
  GET  /file/<n>          200 with n bytes from a temporary file through wsgi.file_wrapper
                          (sendfile unless --no-sendfile)
  GET  /nolength/<n>      200 with n bytes and no Content-Length: chunked on HTTP/1.1,
                          ended by close on HTTP/1.0
  GET  /status/<code>     an empty response with that status code
  GET  /items/<anything>  200 "item", for route templating
  POST /upload            200 with the body's length as text; reads to the body's end, so
                          chunked uploads work
  GET  /error             raises, so Gunicorn answers 500
  /d/<seq>/<route>        the same as /<route>: a unique path per request, so a test can
                          match the observer's request log with the access log line by line
  anything else           404
"""

import tempfile
import time

CHUNK = 64 * 1024


def _respond(start_response, status, body=b""):
    start_response(
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _pieces(length):
    block = b"x" * CHUNK
    sent = 0
    while sent < length:
        part = block[: min(CHUNK, length - sent)]
        sent += len(part)
        yield part


def _file(environ, start_response, length):
    # Unlinked: nothing is left behind when the response ends.
    spool = tempfile.TemporaryFile()
    for part in _pieces(length):
        spool.write(part)
    spool.seek(0)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(length))],
    )
    return environ["wsgi.file_wrapper"](spool, CHUNK)


def _read_all(stream):
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return total
        total += len(chunk)


def _number(path, prefix):
    rest = path[len(prefix):]
    return int(rest) if path.startswith(prefix) and rest.isdigit() else None


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    if path.startswith("/d/"):
        path = "/" + path[len("/d/"):].partition("/")[2]

    if path == "/":
        return _respond(start_response, "200 OK", b"hello")
    if (ms := _number(path, "/sleep/")) is not None:
        time.sleep(ms / 1000)
        return _respond(start_response, "200 OK", b"slept")
    if (n := _number(path, "/bytes/")) is not None:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(n))]
        )
        return _pieces(n)
    if (n := _number(path, "/file/")) is not None:
        return _file(environ, start_response, n)
    if (n := _number(path, "/nolength/")) is not None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _pieces(n)
    if (code := _number(path, "/status/")) is not None:
        return _respond(start_response, f"{code} Whatever")
    if path.startswith("/items/"):
        return _respond(start_response, "200 OK", b"item")
    if path == "/upload" and method == "POST":
        length = _read_all(environ["wsgi.input"])
        return _respond(start_response, "200 OK", str(length).encode())
    if path == "/error":
        raise RuntimeError("requested failure")
    return _respond(start_response, "404 Not Found")
