"""A minimal keep-alive JSON client over ``http.client`` (standard library only)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """A request answered with a status of 300 or more."""


class JsonClient:
    """One persistent connection to ``base_url``; ``call`` returns the decoded JSON."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=300)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send the request and return its JSON body; raise ``HttpError`` for ≥ 300."""
        data = None if body is None else json.dumps(body).encode()
        try:
            self._conn.request(method, path, body=data, headers=self._headers)
            resp = self._conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=300)
            raise
        if resp.status >= 300:
            raise HttpError(f"{method} {path} -> {resp.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
