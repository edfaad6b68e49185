"""WSGI app for the resource tests: routes that make a worker hold threads and files, or
burn CPU.

Routes:
  GET /              200 "hello"
  GET /hold/<k>      opens <k> files and starts <k> threads, keeps all of them for the
                     worker's life, then 200 "held"
  GET /burn/<ms>     spins until the worker has used <ms> more milliseconds of CPU, then
                     200 with the worker's total CPU seconds so far (time.process_time())
  anything else      404
"""

import threading
import time

from wsgi_parts import number, respond

# Kept at module level so nothing is closed or joined when a request ends.
_held_files = []
_held_threads = []
_forever = threading.Event()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")

    if path == "/":
        return respond(start_response, "200 OK", b"hello")

    count = number(path, "/hold/")
    if count is not None:
        for _ in range(count):
            _held_files.append(open("/dev/null", "rb"))
            thread = threading.Thread(target=_forever.wait, daemon=True)
            thread.start()
            _held_threads.append(thread)
        return respond(start_response, "200 OK", b"held")

    millis = number(path, "/burn/")
    if millis is not None:
        until = time.process_time() + millis / 1000
        while time.process_time() < until:
            pass
        return respond(start_response, "200 OK", repr(time.process_time()).encode())

    return respond(start_response, "404 Not Found")
