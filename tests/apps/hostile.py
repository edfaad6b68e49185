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

from wsgi_parts import file_response, number, read_all, respond, sized


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")

    if path == "/":
        return respond(start_response, "200 OK", b"hello")

    if (length := number(path, "/big/")) is not None:
        return sized(start_response, length)

    if (length := number(path, "/file/")) is not None:
        return file_response(environ, start_response, length)

    if (code := number(path, "/status/")) is not None:
        return respond(start_response, f"{code} Whatever")

    if path == "/upload" and method == "POST":
        length = read_all(environ["wsgi.input"])
        return respond(start_response, "200 OK", str(length).encode())

    return respond(start_response, "404 Not Found")
