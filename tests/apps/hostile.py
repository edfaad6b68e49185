"""WSGI app for the hostile-input integration tests: large and unusual bodies.

Routes:
  GET  /                  200 "hello"
  GET  /big/<bytes>       200 with a body of that many bytes, yielded in 64 KiB chunks
  GET  /file/<bytes>      200 with a body of that many bytes from a temporary file, sent
                          through wsgi.file_wrapper (sendfile where Gunicorn can)
  GET  /status/<code>     an empty response with that status code
  POST /upload            200 with the request body's length in bytes as text; reads the
                          body to its end, so it works with and without Content-Length
                          (chunked uploads)
  anything else           404
"""

import tempfile

CHUNK = 64 * 1024


def _respond(start_response, status, body=b"", headers=()):
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _big(length):
    block = b"x" * CHUNK
    sent = 0
    while sent < length:
        part = block[: min(CHUNK, length - sent)]
        sent += len(part)
        yield part


def _file(environ, start_response, length):
    # An unlinked temporary file: nothing is left behind when the response ends.
    spool = tempfile.TemporaryFile()
    block = b"y" * CHUNK
    written = 0
    while written < length:
        written += spool.write(block[: min(CHUNK, length - written)])
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


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")

    if path == "/":
        return _respond(start_response, "200 OK", b"hello")

    if path.startswith("/big/") and path[5:].isdigit():
        length = int(path[5:])
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(length))],
        )
        return _big(length)

    if path.startswith("/file/") and path[6:].isdigit():
        return _file(environ, start_response, int(path[6:]))

    if path.startswith("/status/") and path[8:].isdigit():
        code = int(path[8:])
        return _respond(start_response, f"{code} Whatever")

    if path == "/upload" and method == "POST":
        length = _read_all(environ["wsgi.input"])
        return _respond(start_response, "200 OK", str(length).encode())

    return _respond(start_response, "404 Not Found")
