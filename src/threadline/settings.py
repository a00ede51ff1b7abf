"""Every ``THREADLINE_*`` environment variable, declared once as data.

No other module reads ``os.environ``. Values are read when used (never at import), and a
bad value raises ``InvalidArgumentError`` naming the variable, the value and what it takes.
"""

from __future__ import annotations

import os

from threadline.errors import InvalidArgumentError

TYPE_CHECKING = False  # typing/dataclasses are not imported at runtime: SDK import time matters
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar
    from typing import Generic as _Generic

    T = TypeVar("T")
else:

    class _Generic:
        """Runtime stand-in for ``typing.Generic`` (subscriptable, does nothing)."""

        def __class_getitem__(cls, item: object) -> type:
            return cls

    T = object

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def _parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _parse_positive_float(text: str) -> float:
    value = float(text.strip())
    if not value > 0:
        raise ValueError("expected a positive number")
    return value


def _parse_str(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


class Setting(_Generic[T]):
    """One environment variable: its name, parser, default and documentation."""

    __slots__ = ("default", "doc", "name", "parse")

    def __init__(self, name: str, parse: Callable[[str], T], default: T, doc: str) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.doc = doc

    def get(self) -> T:
        """The current value: parsed from the environment, else the default."""
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"Environment variable {self.name}={raw!r} is invalid: {exc}. {self.doc}"
            ) from None

    def is_set(self) -> bool:
        return bool(os.environ.get(self.name))


TRACKING_URI: Setting[str | None] = Setting(
    "THREADLINE_TRACKING_URI",
    _parse_str,
    None,
    "Where traces go: sqlite:///path.db or postgresql://user@host:port/db. "
    "Default: sqlite:///threadline.db in the current directory.",
)
EXPERIMENT_ID: Setting[str | None] = Setting(
    "THREADLINE_EXPERIMENT_ID",
    _parse_str,
    None,
    "Experiment that traces go to when set_experiment() was not called. Default: '0'.",
)
TRACING_ENABLED: Setting[bool] = Setting(
    "THREADLINE_TRACING_ENABLED",
    _parse_bool,
    True,
    "Set to false to turn tracing off without changing code (decorated code still runs).",
)
ASYNC_TRACE_LOGGING: Setting[bool] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING",
    _parse_bool,
    False,
    "Set to true to export traces in the background (like config.enable_async_logging()).",
)
ASYNC_MAX_WORKERS: Setting[int] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_MAX_WORKERS",
    _parse_positive_int,
    10,
    "Most export threads used by async trace logging.",
)
ASYNC_MAX_QUEUE_SIZE: Setting[int] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE",
    _parse_positive_int,
    1000,
    "Most finished traces waiting for export before the traced program is slowed down.",
)
ASYNC_RETRY_TIMEOUT: Setting[float] = Setting(
    "THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT",
    _parse_positive_float,
    500.0,
    "Seconds to keep retrying a failed export before the batch is counted as dropped.",
)
MAX_PAYLOAD_CHARS: Setting[int] = Setting(
    "THREADLINE_MAX_PAYLOAD_CHARS",
    _parse_positive_int,
    10_000_000,
    "Largest JSON text kept for one span's inputs, outputs or attributes; larger values "
    "are stored truncated with a marker.",
)

ALL_SETTINGS: tuple[Setting[Any], ...] = (
    TRACKING_URI,
    EXPERIMENT_ID,
    TRACING_ENABLED,
    ASYNC_TRACE_LOGGING,
    ASYNC_MAX_WORKERS,
    ASYNC_MAX_QUEUE_SIZE,
    ASYNC_RETRY_TIMEOUT,
    MAX_PAYLOAD_CHARS,
)
