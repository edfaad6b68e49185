"""ASGI app for the async-worker fidelity scenarios (Gunicorn's asgi worker, uvicorn's).

Routes:
  GET /              200 "hello"
  GET /sleep/<ms>    awaits that many milliseconds, then 200 "slept"
  anything else      404
"""

import asyncio


async def _respond(send, status, body):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return

    path = scope["path"]
    if path == "/":
        await _respond(send, 200, b"hello")
        return
    rest = path[len("/sleep/"):]
    if path.startswith("/sleep/") and rest.isdigit():
        await asyncio.sleep(int(rest) / 1000)
        await _respond(send, 200, b"slept")
        return
    await _respond(send, 404, b"")
