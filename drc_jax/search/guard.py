"""Who may talk to the search server: the Host names it was started for, a token when remote.

An unknown ``Host`` (DNS rebinding) is refused (421), another site's request (403) unless a plain
navigation to the page; a token comes as ``X-DRC-Token``, Bearer, cookie or ``?token=``.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
COOKIE = "drc_token"
TOKEN_HEADER = "x-drc-token"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_name(host: str) -> str:
    """``host`` as a Host header names it: IPv6 literals in brackets, lower case."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_host(value: str) -> tuple[str, int | None] | None:
    """``"name:port"`` -> ``(name, port)``; ``None`` when it is not a well-formed Host value."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value.partition("]")
        name += sep
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, sep, port = value.partition(":")
        port = port if sep else None
    if not name or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        return None
    return name, None if port is None else int(port)


def machine_names(host: str) -> list[str]:
    """``host`` (unless a wildcard), this machine's names and the addresses they resolve to."""
    names = [] if host.strip() in WILDCARD_HOSTS else [host]
    try:
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        names += [info[4][0] for info in socket.getaddrinfo(hostname, None)]
    except OSError:
        pass
    return list(dict.fromkeys(host_name(n) for n in names if n))


@dataclass(frozen=True)
class Access:
    """The Host names accepted (``port`` None: any port) and the token required (None: none)."""

    names: tuple[str, ...] = LOOPBACK_NAMES
    port: int | None = None
    token: str | None = None

    @classmethod
    def loopback(cls, port: int | None = None, host: str = "127.0.0.1") -> Access:
        return cls(tuple(dict.fromkeys((*LOOPBACK_NAMES, host_name(host)))), port)

    @classmethod
    def remote(cls, host: str, port: int, names=(), token: str | None = None) -> Access:
        """Loopback names, ``host``'s names (:func:`machine_names`) and ``names``, with a token."""
        every = (*LOOPBACK_NAMES, *machine_names(host), *(host_name(n) for n in names))
        return cls(tuple(dict.fromkeys(every)), port, token or new_token())

    def accepts_host(self, value: str) -> bool:
        parsed = split_host(value)
        if parsed is None or parsed[0] not in self.names:
            return False
        port = parsed[1]
        return self.port is None or port == self.port or (port is None and self.port == 80)

    def url(self, host: str) -> str:
        """The address to open (with the token, when one is required)."""
        name = "127.0.0.1" if host.strip() in WILDCARD_HOSTS else host_name(host)
        port = "" if self.port in (None, 80) else f":{self.port}"
        return f"http://{name}{port}/" + (f"?token={self.token}" if self.token else "")


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


def _same(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


class AccessGuard:
    """ASGI middleware enforcing an :class:`Access` before the app sees a request."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused, set_cookie = self.check(scope)
        if refused is not None:
            status, message = refused
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008, "reason": message})
            return await _reply(send, status, message)
        if not set_cookie:
            return await self.app(scope, receive, send)
        cookie = f"{COOKIE}={self.access.token}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"set-cookie", cookie)]}
            await send(message)

        return await self.app(scope, receive, with_cookie)

    def check(self, scope) -> tuple[tuple[int, str] | None, bool]:
        """``((status, why) or None, whether to set the token cookie)`` for a request."""
        h = _headers(scope)
        host = h.get("host", "")
        if not self.access.accepts_host(host):
            return (421, f"this server does not answer to the Host {host!r}; open "
                    f"{self.access.url('127.0.0.1').split('?')[0]} (or start it with "
                    "--allow_remote --allowed_host NAME for another name)"), False  # fmt: skip
        origin = h.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return (403, "requests from other sites' pages are refused"), False
        site = h.get("sec-fetch-site", "same-origin")
        is_page = scope.get("path") == "/" and h.get("sec-fetch-mode") == "navigate"
        if site not in ("same-origin", "none") and not is_page:
            return (403, "requests from other sites' pages are refused"), False
        token = self.access.token
        if token is None:
            return None, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        bearer = h.get("authorization", "")
        bearer = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        jar = SimpleCookie()
        try:
            jar.load(h.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed Cookie header is just no cookie
            jar = SimpleCookie()
        cookie = jar[COOKIE].value if COOKIE in jar else None
        if _same(query, token):
            return None, scope["type"] == "http"
        if any(_same(t, token) for t in (h.get(TOKEN_HEADER), bearer, cookie)):
            return None, False
        return (401, "this server needs its access token: open the address it printed at start "
                "(http://HOST:PORT/?token=...) or send the header X-DRC-Token"), False  # fmt: skip


async def _reply(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
