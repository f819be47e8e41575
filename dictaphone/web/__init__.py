"""`dictaphone serve`: the clip library as a local web page (Starlette on uvicorn).

Imported only by the `serve` command, so nothing else pays for the server stack. The page
is plain HTML, CSS and JavaScript in ``static/``, served by the server itself (no build
step, nothing fetched from elsewhere). See security.py for what guards it.
"""

from .server import create_app, serve

__all__ = ["create_app", "serve"]
