"""`dictaphone serve`: the library in a browser, on this machine only."""

from __future__ import annotations

import click

from .app import EXIT_ERROR, EXIT_USAGE, cli, fail, say

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@cli.command()
@click.option("-p", "--port", type=click.IntRange(0, 65535), help=f"TCP port (default {DEFAULT_PORT}, or the next free one; 0: any free port).")
@click.option("--host", help="Listen on this address instead of a loopback address of the page's own (anyone who can reach it and has the token can use the microphone).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def serve(port, host, open_browser):
    """Serve the clip library as a local web page: play, search, rename, delete, record.

    Prints the address to open (with its access token) on stdout. Only this machine can
    connect unless --host is given. Ctrl-C or SIGTERM stops the server; recordings
    started from the page are stopped and saved first.
    """
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        fail(f"the web page needs {e.name or 'starlette and uvicorn'}: pip install 'dictaphone[web]'", EXIT_USAGE)

    from ..web import serve as run_server

    if host is not None and not host.strip("[] \t"):
        # ("" would reach getaddrinfo as "any address": every interface, not none)
        fail("--host is empty; give an address to listen on, or leave --host out for "
             "127.0.0.1", EXIT_USAGE)
    page_host = None
    if host is None:
        sock, bind, page_host = _bind_private(port)
    else:
        bind = host.strip("[]")
        if bind not in LOOPBACK:
            say(f"dictaphone: warning: listening on {host}: other machines that can reach it "
                "and have the token can play, delete and record")
        sock = _bind(bind, port)
    run_server(sock, host=bind, open_browser=open_browser,
               transcribe=_record_can_transcribe(), announce=_announce, page_host=page_host)


def _bind_private(port: int | None):
    """(socket, address, host name of the page): a loopback address of the page's own.

    Browsers keep cookies per host, not per port: a cookie set by 127.0.0.1:8765 goes to
    every other server on 127.0.0.1, so any local program the browser visits would get the
    page's secret. The page is served on a random address of 127.0.0.0/8 instead (all of it
    is loopback on Linux and Windows), which no other server's address is; where only
    127.0.0.1 exists (macOS), on 127.0.0.1 under a random ``*.localhost`` name, which
    browsers resolve to loopback themselves (RFC 6761)."""
    import errno
    import secrets

    for _ in range(5):
        address = "127.{}.{}.{}".format(*(1 + secrets.randbelow(254) for _ in range(3)))
        sock = _bind(address, port, unavailable_ok=True)
        if sock is not None:
            return sock, address, address
    sock = _bind("127.0.0.1", port)
    return sock, "127.0.0.1", f"dictaphone-{secrets.token_hex(6)}.localhost"


def _bind(host: str, port: int | None, unavailable_ok: bool = False):
    """A listening socket on ``host``; None when ``unavailable_ok`` and the address is not
    this machine's (EADDRNOTAVAIL); else one line and an exit."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        fail(f"cannot listen on {host!r}: {e.strerror}", EXIT_USAGE)
    family, _, _, _, address = infos[0]
    candidates = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + 20)
    last = None
    for p in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address[0], p, *address[2:]))
            sock.listen(64)
            return sock
        except OSError as e:
            sock.close()
            last = e
            if e.errno == errno.EADDRNOTAVAIL and unavailable_ok:
                return None
            if e.errno != errno.EADDRINUSE:
                break
    if last is not None and last.errno == errno.EADDRINUSE:
        what = f"port {port} is" if port is not None else f"ports {candidates[0]}-{candidates[-1]} are"
        fail(f"{what} in use; choose another with --port (0 picks a free one)", EXIT_ERROR)
    fail(f"cannot listen on {host} port {port}: {last.strerror if last else 'unknown error'}", EXIT_ERROR)


def _announce(url: str) -> None:
    # The address is this command's data (scripts read it); the rest is for people.
    click.echo(url)
    say(f"dictaphone serve: open {url}")
    say("dictaphone serve: Ctrl-C stops the server")


def _record_can_transcribe() -> bool:
    """Whether `record --transcribe` exists here and its engine is installed."""
    import importlib.util

    from .record_cmd import record

    has_option = any(p.name == "transcribe" for p in record.params)
    return has_option and importlib.util.find_spec("faster_whisper") is not None
