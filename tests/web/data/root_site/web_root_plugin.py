"""A ``moksha.root`` app for the tests: it answers every path it is given with its path."""

from starlette.responses import PlainTextResponse


async def app(scope, receive, send):
    await PlainTextResponse(f"root app: {scope['path']}")(scope, receive, send)
