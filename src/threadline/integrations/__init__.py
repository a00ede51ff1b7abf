"""Autologging: one module per library (``threadline.openai``, ``threadline.anthropic`` …).

``threadline.autolog()`` turns on every registered integration whose library is
installed. An integration is a module under this package with an ``INTEGRATION``
(``_base.Integration``) and an ``autolog()``; ``register()`` adds one. Importing this
package imports no library: each is imported inside its ``autolog()``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from threadline.errors import InvalidArgumentError

# Library name -> the threadline module that integrates it.
_REGISTRY: dict[str, str] = {
    "openai": "threadline.integrations.openai",
    "anthropic": "threadline.integrations.anthropic",
    "bedrock": "threadline.integrations.bedrock",
    "mistral": "threadline.integrations.mistral",
    "ollama": "threadline.integrations.ollama",
    "gemini": "threadline.integrations.gemini",
    "litellm": "threadline.integrations.litellm",
    "groq": "threadline.integrations.groq",
    "openai_agents": "threadline.integrations.openai_agents",
    "dspy": "threadline.integrations.dspy",
    "llama_index": "threadline.integrations.llama_index",
    "langchain": "threadline.integrations.langchain",
    "pydantic_ai": "threadline.integrations.pydantic_ai",
}

__all__ = ["autolog", "register", "registered"]


def register(name: str, module: str) -> None:
    """Make ``threadline.autolog()`` include the integration defined in ``module``."""
    _REGISTRY[name] = module


def registered() -> dict[str, str]:
    """Library name -> integration module, for every registered integration."""
    return dict(_REGISTRY)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Turn on (or with ``disable=True`` off) every integration whose library is installed.

    A library whose installed version is too old is skipped with a warning (unless
    ``silent``); calling a single integration's ``autolog()`` raises instead.
    """
    for name, module_name in _REGISTRY.items():
        integration: Any = importlib.import_module(module_name).INTEGRATION
        if disable or not log_traces:
            integration.autolog(disable=disable, log_traces=log_traces, silent=silent)
            continue
        if not _installed(integration.import_name):
            continue
        try:
            integration.autolog(silent=silent)
        except InvalidArgumentError as exc:
            if not silent:
                _warn(name, exc)


def _installed(import_name: str) -> bool:
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


def _warn(name: str, exc: Exception) -> None:
    import logging

    logging.getLogger("threadline").warning(
        "threadline.autolog(): skipped %s: %s", name, exc, exc_info=False
    )
