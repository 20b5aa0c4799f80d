"""One HTTP request with a deadline for the whole exchange and a cap on the answer's size.

A socket timeout bounds each read, not the request (a trickling server never trips it), so a
timer shuts the socket down at the deadline and the call raises :class:`DeadlineExceeded`.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.parse


class DeadlineExceeded(TimeoutError):
    """No complete answer within the deadline."""


class BodyTooLarge(ValueError):
    """The answer is longer than the cap (a misbehaving server, not a decomposition)."""


def post(
    url: str, body: bytes, headers: dict[str, str], deadline_s: float, max_bytes: int
) -> tuple[int, bytes]:
    """(HTTP status, body) of one POST; OSError / HTTPException for transport failures."""
    return request("POST", url, body, headers, deadline_s, max_bytes)


def request(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline_s: float,
    max_bytes: int,
) -> tuple[int, bytes]:
    """(HTTP status, body) of one request, all within ``deadline_s``; OSError / HTTPException."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=deadline_s)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    expired = threading.Event()
    # http.client drops conn.sock on "Connection: close" while the answer is still being read.
    sockets = []

    def expire():
        expired.set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()
        sockets.append(conn.sock)
        if expired.is_set():
            raise DeadlineExceeded(f"no complete answer within {deadline_s}s")
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        chunks, size = [], 0
        while chunk := resp.read1(65536):
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"answer longer than {max_bytes} bytes")
            chunks.append(chunk)
        if expired.is_set():
            raise DeadlineExceeded(f"no complete answer within {deadline_s}s")
        return resp.status, b"".join(chunks)
    except (OSError, http.client.HTTPException) as e:
        if expired.is_set():
            raise DeadlineExceeded(f"no complete answer within {deadline_s}s") from e
        raise
    finally:
        timer.cancel()
        conn.close()
