"""The guard in front of every request: Host, token, and what may change state.

A page that can start the microphone and delete recordings is worth attacking from any
other page the user has open, so every request must pass, in order:

1. Host: only the addresses the server listens on (127.0.0.1:PORT, localhost:PORT,
   [::1]:PORT, or --host's). A DNS-rebinding page (evil.example resolving to 127.0.0.1)
   sends its own name and is refused.
2. The token: the secret in the printed address. The first visit trades it for a cookie
   (HttpOnly, SameSite=Strict: other sites' pages never carry it) and is redirected to a
   clean address; scripts may send it in the ``X-Dictaphone-Token`` header instead.
   Cookies are kept per host, not per port, so a cookie of 127.0.0.1:8765 would go to
   every other server on 127.0.0.1 that the browser visits: `serve` listens on a random
   address of 127.0.0.0/8 of its own (or, where there is only 127.0.0.1, under a random
   ``*.localhost`` name), and the cookie is set for, and taken from, that host only.
3. Changes (rename, delete, record, stop, ...) only by POST, and only with the token in
   the header: a cross-site form or image cannot set a header, and a cross-site fetch
   that tries needs a CORS preflight, which gets no CORS headers. A browser's Origin (and
   Sec-Fetch-Site), when sent, must be this server's own.

Pure ASGI, so it also guards the event stream and the audio's range requests.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

TOKEN_HEADER = "x-dictaphone-token"


def loopback_hosts(port: int) -> set[str]:
    return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}


def host_names(host: str, port: int) -> set[str] | None:
    """The Host headers to accept; None when listening on every interface (any name
    may reach it, and only the token protects it)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    allowed = loopback_hosts(port)
    allowed.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return {h.lower() for h in allowed}


class Guard:
    def __init__(self, app, token: str, port: int, hosts: set[str] | None,
                 headers: dict[str, str] | None = None, cookie_host: str | None = None):
        self.app = app
        #: the only Host the cookie is set for and taken from (the page's own address);
        #: None: whatever Host the request came to
        self.cookie_host = cookie_host
        self.headers = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        self.token = token
        self.hosts = hosts
        # Cookies are not kept apart by port: two servers on one machine need two names.
        self.cookie = f"dictaphone-token-{port}"

    def _is_token(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(value.encode("utf-8", "replace"), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no WebSockets here
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            if key == "cookie":
                cookies.append(value)
            elif key in headers:
                headers[key] = "\0"  # a repeated Host/Origin/token header is not trusted
            else:
                headers[key] = value
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return await _refuse(send, 403, "forbidden: unknown Host (this server answers only to its own address)")
        origins = {f"http://{h}" for h in self.hosts} if self.hosts is not None else {f"http://{host}"}
        method = scope["method"]
        header_token = headers.get(TOKEN_HEADER)
        if method == "POST":
            if not self._is_token(header_token):
                return await _refuse(send, 403, f"forbidden: a change needs the token in the {TOKEN_HEADER} header")
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in origins:
                return await _refuse(send, 403, "forbidden: cross-origin request")
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return await _refuse(send, 403, "forbidden: cross-site request")
            return await self._pass(scope, receive, send)
        if method not in ("GET", "HEAD"):
            return await _refuse(send, 405, "method not allowed", [(b"allow", b"GET, HEAD, POST")])
        cookie_here = self.cookie_host is None or host == self.cookie_host
        if self._is_token(header_token) or (cookie_here and any(map(self._is_token, self._cookie_tokens(cookies)))):
            return await self._pass(scope, receive, send)
        if scope["path"] == "/":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if self._is_token((query.get("token") or [None])[0]):
                if not cookie_here:
                    # (127.0.0.1 or localhost typed by hand: the cookie is set only for the
                    # page's own host, which no other server shares)
                    location = f"http://{self.cookie_host}/?token={self.token}"
                    return await _refuse(send, 303, "see the page's own address",
                                         [(b"location", location.encode())])
                # Trade the token for a cookie and drop it from the address bar (and history).
                cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                return await _refuse(send, 303, "see /", [(b"location", b"/"),
                                                          (b"set-cookie", cookie.encode())])
        return await _refuse(send, 403, "forbidden: open the address with the token that "
                                        "'dictaphone serve' printed")

    async def _pass(self, scope, receive, send):
        """Let the request through; its response gets the security headers, and API
        answers are not cached."""
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in names]
                if api and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _cookie_tokens(self, cookies: list[str]) -> list[str]:
        """The values of this server's cookie in the Cookie headers, read one
        ``name=value`` pair at a time: the other pairs are other applications' business
        (any local app may set cookies for this host), and one this parser could not
        read (``prefs={"a":1}``, ``x=a b``, ``lang=é``, a bare ``x``) must not hide
        ours. ``SimpleCookie`` stopped at the first such pair and every request got 403."""
        return cookie_values(cookies, self.cookie)


def cookie_values(headers: list[str], name: str) -> list[str]:
    """Every value of the cookie ``name`` in these Cookie headers (RFC 6265 5.4: pairs
    separated by ``;``, the name up to the first ``=``; a value may be quoted). Nothing
    about the other pairs is assumed."""
    found = []
    for header in headers:
        for pair in header.split(";"):
            key, eq, value = pair.partition("=")
            if eq and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                found.append(value)
    return found


async def _refuse(send, status: int, text: str, headers: list | None = None) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"x-content-type-options", b"nosniff"),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
