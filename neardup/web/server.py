"""`neardup serve`: bind the address first (so a taken port is a clear error and the printed
URL is the real one, port 0 included), then run the app on uvicorn in this process."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from neardup.api import Collection
from neardup.storage.errors import NeardupError

from .app import create_app
from .security import DEFAULT_MAX_UPLOAD, Security, hosts_for, is_loopback, new_secret


class AddressInUseError(NeardupError, OSError):
    """The host and port to serve on cannot be bound."""


@dataclass(frozen=True)
class Bound:
    """A listening socket and what to tell the user about it."""

    sock: socket.socket
    url: str  # to open in a browser (carries the token when there is one)
    security: Security
    generated_token: bool


def bind(host: str = "127.0.0.1", port: int = 8765, *, token: str | None = None,
         max_upload: int = DEFAULT_MAX_UPLOAD) -> Bound:
    """Listen on `host`:`port`. Beyond loopback a token is required: `token`, or a new one."""
    generated = token is None and not is_loopback(host)
    if generated:
        token = new_secret()
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it every small answer waits ~40 ms for the
    # client's delayed ACK (Nagle), and asyncio only sets it on sockets made with IPPROTO_TCP
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise AddressInUseError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                                hint="choose another --port (0: any free one) or --host") from e
    sock.listen(128)
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    # with a token, any Host name may be used (a rebound domain cannot know the token)
    security = Security(token=token, hosts=None if token else hosts_for(host), max_body=max_upload)
    return Bound(sock, url, security, generated)


def run(collection: Collection, bound: Bound, *, workers: int | None = None) -> None:
    """Serve `collection` on the bound socket until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    app = create_app(collection, security=bound.security, workers=workers)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[bound.sock])
