"""Pieces the WSGI test apps share: plain responses, generated bodies, body reading."""

import tempfile

CHUNK = 64 * 1024


def respond(start_response, status, body=b""):
    start_response(
        status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


def pieces(length):
    """`length` bytes of b"x", in CHUNK-sized parts."""
    block = b"x" * CHUNK
    sent = 0
    while sent < length:
        part = block[: min(CHUNK, length - sent)]
        sent += len(part)
        yield part


def sized(start_response, length):
    """200 with `length` bytes and a Content-Length, yielded piece by piece."""
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(length))]
    )
    return pieces(length)


def file_response(environ, start_response, length):
    """200 with `length` bytes from a file through wsgi.file_wrapper (sendfile where
    Gunicorn can)."""
    # Unlinked: nothing is left behind when the response ends.
    spool = tempfile.TemporaryFile()
    for part in pieces(length):
        spool.write(part)
    spool.seek(0)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(length))],
    )
    return environ["wsgi.file_wrapper"](spool, CHUNK)


def read_all(stream):
    """Reads a request body to its end and returns its length, with or without a
    Content-Length (chunked uploads)."""
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return total
        total += len(chunk)


def number(path, prefix):
    """The digits after `prefix` as an int, or None when `path` is not `prefix<digits>`."""
    rest = path[len(prefix):]
    return int(rest) if path.startswith(prefix) and rest.isdigit() else None
