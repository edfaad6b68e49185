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

import time

from wsgi_parts import file_response, number, pieces, read_all, respond, sized


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    if path.startswith("/d/"):
        path = "/" + path[len("/d/"):].partition("/")[2]

    if path == "/":
        return respond(start_response, "200 OK", b"hello")
    if (ms := number(path, "/sleep/")) is not None:
        time.sleep(ms / 1000)
        return respond(start_response, "200 OK", b"slept")
    if (n := number(path, "/bytes/")) is not None:
        return sized(start_response, n)
    if (n := number(path, "/file/")) is not None:
        return file_response(environ, start_response, n)
    if (n := number(path, "/nolength/")) is not None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return pieces(n)
    if (code := number(path, "/status/")) is not None:
        return respond(start_response, f"{code} Whatever")
    if path.startswith("/items/"):
        return respond(start_response, "200 OK", b"item")
    if path == "/upload" and method == "POST":
        length = read_all(environ["wsgi.input"])
        return respond(start_response, "200 OK", str(length).encode())
    if path == "/error":
        raise RuntimeError("requested failure")
    return respond(start_response, "404 Not Found")
