"""WSGI app for the worker-lifecycle tests: routes that make a worker slow, crash or run out
of memory.

Routes:
  GET /              200 "hello"
  GET /sleep/<ms>    sleeps that many milliseconds, then 200 "slept"
  GET /stuck/<ms>    the same with SIGABRT blocked, so a timeout needs the master's SIGKILL
  GET /segv          the worker sends itself SIGSEGV (no core file is written)
  GET /hog           allocates and touches memory until the kernel stops it
  anything else      404
"""

import os
import resource
import signal
import time

from wsgi_parts import number, respond

HOG_CHUNK = 16 * 1024 * 1024


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")

    if path == "/":
        return respond(start_response, "200 OK", b"hello")

    if (ms := number(path, "/sleep/")) is not None:
        time.sleep(ms / 1000)
        return respond(start_response, "200 OK", b"slept")

    if (ms := number(path, "/stuck/")) is not None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGABRT})
        time.sleep(ms / 1000)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGABRT})
        return respond(start_response, "200 OK", b"slept")

    if path == "/segv":
        # A crash must not leave a core file in the apps directory.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)

    if path == "/hog":
        hoard = []
        while True:
            # Filled with a non-zero byte, so every page is written and resident.
            hoard.append(b"\x01" * HOG_CHUNK)

    return respond(start_response, "404 Not Found")
