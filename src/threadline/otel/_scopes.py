"""Which instrumentation scopes' spans the bridge keeps.

Spans of instrumentations that have nothing to do with LLMs or agents (HTTP clients and
servers, database drivers, queues, web frameworks) are dropped by default; the kept
children of a dropped span attach to its nearest kept ancestor. ``THREADLINE_OTEL_DENY_SCOPES``
adds scopes to drop, ``THREADLINE_OTEL_ALLOW_SCOPES`` keeps scopes whatever the lists say
(``*``: keep everything). A scope name covers its dotted sub-scopes.

An instrumentation recording a library that threadline's own autolog covers (an
OpenInference or OpenLLMetry instrumentation of openai while ``threadline.openai.autolog()``
is on) would record each call twice: its spans are dropped while that autolog is on.
"""

from __future__ import annotations

import sys

from threadline import settings

_INSTRUMENTATION = "opentelemetry.instrumentation."
_NOISE_LIBRARIES = (
    # HTTP clients and servers, RPC
    "aiohttp_client",
    "aiohttp_server",
    "asgi",
    "wsgi",
    "fastapi",
    "flask",
    "django",
    "starlette",
    "falcon",
    "pyramid",
    "tornado",
    "httpx",
    "requests",
    "urllib",
    "urllib3",
    "grpc",
    "aws_lambda",
    "botocore",
    "boto",
    "boto3sqs",
    "tortoiseorm",
    # databases and caches
    "sqlalchemy",
    "sqlite3",
    "dbapi",
    "psycopg",
    "psycopg2",
    "asyncpg",
    "aiopg",
    "pymysql",
    "mysql",
    "mysqlclient",
    "pymssql",
    "pymongo",
    "redis",
    "elasticsearch",
    "cassandra",
    "pymemcache",
    # queues and tasks
    "celery",
    "kafka",
    "confluent_kafka",
    "aiokafka",
    "pika",
    "aio_pika",
    "remoulade",
    # the runtime itself
    "logging",
    "threading",
    "asyncio",
    "system_metrics",
    "jinja2",
)
DEFAULT_DENIED = tuple(_INSTRUMENTATION + name for name in _NOISE_LIBRARIES)

# Instrumentation scope → the threadline integration recording the same calls natively.
_NATIVE: dict[str, str] = {}
for _prefix in ("openinference.instrumentation.", _INSTRUMENTATION):
    for _scope, _integration in (
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("bedrock", "bedrock"),
        ("mistralai", "mistral"),
        ("groq", "groq"),
        ("ollama", "ollama"),
        ("litellm", "litellm"),
        ("google_genai", "gemini"),
        ("langchain", "langchain"),
        ("llama_index", "llama_index"),
        ("llamaindex", "llama_index"),
        ("dspy", "dspy"),
        ("openai_agents", "openai_agents"),
    ):
        _NATIVE[_prefix + _scope] = _integration


class ScopeFilter:
    """Decides, per instrumentation scope, whether the bridge keeps a span."""

    def __init__(self, denied: tuple[str, ...], allowed: tuple[str, ...]) -> None:
        self.denied = denied
        self.allowed = allowed
        self._noise: dict[str, bool] = {}
        self._native: dict[str, str | None] = {}

    @classmethod
    def from_settings(cls) -> ScopeFilter:
        return cls(
            DEFAULT_DENIED + settings.OTEL_DENY_SCOPES.get(),
            settings.OTEL_ALLOW_SCOPES.get(),
        )

    def drops(self, scope: str) -> bool:
        """Whether spans of ``scope`` are left out (noise, or recorded natively now)."""
        noise = self._noise.get(scope)
        if noise is None:
            noise = self._noise[scope] = self._is_noise(scope)
        if noise:
            return True
        native = self._native.get(scope, "")
        if native == "":
            native = self._native[scope] = _native_integration(scope)
        return native is not None and _natively_traced(native) and not self._allows(scope)

    def _is_noise(self, scope: str) -> bool:
        return _covers(self.denied, scope) and not self._allows(scope)

    def _allows(self, scope: str) -> bool:
        return "*" in self.allowed or _covers(self.allowed, scope)


def _covers(names: tuple[str, ...], scope: str) -> bool:
    return any(scope == name or scope.startswith(name + ".") for name in names)


def _native_integration(scope: str) -> str | None:
    for prefix, integration in _NATIVE.items():
        if scope == prefix or scope.startswith(prefix + "."):
            return integration
    return None


def _natively_traced(integration: str) -> bool:
    """Whether ``threadline.<integration>.autolog()`` is on (its module is loaded by then)."""
    module = sys.modules.get(f"threadline.integrations.{integration}")
    owner = getattr(module, "INTEGRATION", None)
    return bool(getattr(owner, "enabled", False))
