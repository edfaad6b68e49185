"""WSGI app whose worker starts processes of its own: none of them is a Gunicorn worker.

Routes:
  GET /      200 "hello"
  GET /spawn runs a Python subprocess to completion, then forks a child that exits at
             once and reaps it; 200 with the subprocess's output
  anything else 404
"""

import os
import subprocess
import sys

from wsgi_parts import respond


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")

    if path == "/":
        return respond(start_response, "200 OK", b"hello")

    if path == "/spawn":
        done = subprocess.run(
            [sys.executable, "-c", "print('child')"],
            capture_output=True,
            check=True,
        )
        pid = os.fork()
        if pid == 0:
            # The forked copy must not run the worker's loop or flush its buffers.
            os._exit(0)
        os.waitpid(pid, 0)
        return respond(start_response, "200 OK", done.stdout.strip())

    return respond(start_response, "404 Not Found")
