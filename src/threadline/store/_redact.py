"""Store URLs and passwords out of error text.

A store's error messages reach HTTP clients (the server's error answers) and log lines; a
database URL there names the host, the user and maybe the password, and a driver's message
may quote the connection settings. ``redact`` replaces every ``scheme://…`` URL, every
``password=…`` setting and any given secret.
"""

from __future__ import annotations

import re

HIDDEN_URL = "<URL hidden>"
HIDDEN = "***"
MIN_SECRET_CHARS = 4  # shorter secrets are not replaced (that would garble the message)

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s'\",;)]+)")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` without URLs, ``password=`` settings or any of ``secrets``."""
    for secret in secrets:
        if secret is not None and len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, HIDDEN)
    text = _URL.sub(HIDDEN_URL, text)
    return _PASSWORD.sub(lambda m: m.group(1) + m.group(2) + HIDDEN, text)


def hide_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***`` (the
    rest kept, so it still says where): for lines people read, such as the exit notice."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:{HIDDEN}@{host}{slash}{path}"
