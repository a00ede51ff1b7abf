"""What an LLM call cost, from its model and token counts: a price table you can extend.

Prices are USD per million tokens on each provider's standard pay-as-you-go tier (no
batch, flex or priority rates, no free tier), as publicly listed; the table was checked on
2026-11-25 against the providers' price pages as collected in LiteLLM's public price list.
Providers change prices: register your own with ``register_model_price`` (it wins over
the table), also for fine-tuned, self-hosted or newer models.

A model is looked up by its exact name, then without Gemini's ``models/`` prefix or a
prefix naming the span's provider (``groq/…``), then without a date suffix
(``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``, ``claude-3-5-haiku-20241022`` →
``claude-3-5-haiku``). Moving aliases such as
Mistral's ``*-latest`` are not in the table, and an unknown model has no cost: the table
never guesses. Input tokens count every prompt token, cached ones included (as the
integrations record them); cached reads and cache writes are priced apart where the
provider lists a separate price.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.errors import InvalidArgumentError

__all__ = ["ModelPrice", "compute_cost", "get_model_price", "register_model_price"]

_MILLION = Decimal(1_000_000)
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_PREFIXES = ("models/",)
_MAX_TOKENS = 10**12


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of one model.

    ``cached_input`` prices prompt tokens read from the provider's cache and ``cache_write``
    those written to it (both default to ``input``). Above ``long_context_tokens`` input
    tokens a whole call is billed at the ``long_context`` prices (Gemini 2.5 Pro, Claude
    Sonnet 4 with a 1M context).
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    long_context_tokens: int | None = None
    long_context: ModelPrice | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is None and name in ("cached_input", "cache_write"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InvalidArgumentError(
                    f"ModelPrice.{name} must be a number of USD per million tokens >= 0, "
                    f"got {value!r}."
                )
        if (self.long_context_tokens is None) != (self.long_context is None):
            raise InvalidArgumentError(
                "ModelPrice: give long_context_tokens and long_context together, or neither."
            )


def _price(
    inp: float,
    out: float,
    cached: float | None = None,
    write: float | None = None,
    *,
    above: tuple[int, ModelPrice] | None = None,
) -> ModelPrice:
    if above is None:
        return ModelPrice(inp, out, cached, write)
    return ModelPrice(inp, out, cached, write, above[0], above[1])


def _builtin_table() -> dict[tuple[str | None, str], ModelPrice]:
    """The shipped prices: ``(provider or None, model) -> price``.

    Names that other hosts use for the same open model at other prices (Groq's
    ``openai/gpt-oss-120b`` …) are tied to their provider, so they never match elsewhere.
    """
    claude_sonnet_long = _price(6.0, 22.5, 0.6, 7.5)
    claude_sonnet_4 = _price(3.0, 15.0, 0.3, 3.75, above=(200_000, claude_sonnet_long))
    claude_sonnet_45_regional = _price(
        3.3, 16.5, 0.33, 4.125, above=(200_000, _price(6.6, 24.75, 0.66, 8.25))
    )
    gemini_25_pro = _price(1.25, 10.0, 0.125, above=(200_000, _price(2.5, 15.0, 0.25)))
    gemini_3_pro = _price(2.0, 12.0, 0.2, above=(200_000, _price(4.0, 18.0, 0.4)))
    table: dict[str, ModelPrice] = {
        # OpenAI
        "gpt-5": _price(1.25, 10.0, 0.125),
        "gpt-5.1": _price(1.25, 10.0, 0.125),
        "gpt-5-mini": _price(0.25, 2.0, 0.025),
        "gpt-5-nano": _price(0.05, 0.4, 0.005),
        "gpt-4.1": _price(2.0, 8.0, 0.5),
        "gpt-4.1-mini": _price(0.4, 1.6, 0.1),
        "gpt-4.1-nano": _price(0.1, 0.4, 0.025),
        "gpt-4o": _price(2.5, 10.0, 1.25),
        "gpt-4o-2024-05-13": _price(5.0, 15.0),  # the first gpt-4o snapshot kept its price
        "gpt-4o-mini": _price(0.15, 0.6, 0.075),
        "o1": _price(15.0, 60.0, 7.5),
        "o3": _price(2.0, 8.0, 0.5),
        "o3-mini": _price(1.1, 4.4, 0.55),
        "o4-mini": _price(1.1, 4.4, 0.275),
        "gpt-4-turbo": _price(10.0, 30.0),
        "gpt-4": _price(30.0, 60.0),
        "gpt-3.5-turbo": _price(0.5, 1.5),
        "text-embedding-3-small": _price(0.02, 0.0),
        "text-embedding-3-large": _price(0.13, 0.0),
        "text-embedding-ada-002": _price(0.1, 0.0),
        # Anthropic (cache writes at the 5-minute rate)
        "claude-opus-4-5": _price(5.0, 25.0, 0.5, 6.25),
        "claude-sonnet-4-5": claude_sonnet_4,
        "claude-haiku-4-5": _price(1.0, 5.0, 0.1, 1.25),
        "claude-opus-4-1": _price(15.0, 75.0, 1.5, 18.75),
        "claude-opus-4": _price(15.0, 75.0, 1.5, 18.75),
        "claude-sonnet-4": claude_sonnet_4,
        "claude-3-7-sonnet": _price(3.0, 15.0, 0.3, 3.75),
        "claude-3-5-sonnet": _price(3.0, 15.0, 0.3, 3.75),
        "claude-3-5-haiku": _price(0.8, 4.0, 0.08, 1.0),
        "claude-3-opus": _price(15.0, 75.0, 1.5, 18.75),
        "claude-3-haiku": _price(0.25, 1.25, 0.03, 0.3),
        # Google Gemini API (text input; audio input is priced higher)
        "gemini-3-pro-preview": gemini_3_pro,
        "gemini-2.5-pro": gemini_25_pro,
        "gemini-2.5-flash": _price(0.3, 2.5, 0.03),
        "gemini-2.5-flash-lite": _price(0.1, 0.4, 0.01),
        "gemini-2.0-flash": _price(0.1, 0.4, 0.025),
        "gemini-2.0-flash-001": _price(0.1, 0.4, 0.025),
        "gemini-2.0-flash-lite": _price(0.075, 0.3),
        "gemini-2.0-flash-lite-001": _price(0.075, 0.3),
        "gemini-embedding-001": _price(0.15, 0.0),
        # Mistral (versioned names only: the *-latest aliases move)
        "mistral-large-2512": _price(0.5, 1.5),
        "mistral-large-2411": _price(2.0, 6.0),
        "mistral-medium-2505": _price(0.4, 2.0),
        "mistral-small-2506": _price(0.1, 0.3),
        "mistral-small-2503": _price(0.1, 0.3),
        "codestral-2508": _price(0.3, 0.9),
        "codestral-2501": _price(0.3, 0.9),
        "pixtral-large-2411": _price(2.0, 6.0),
        "ministral-8b-2410": _price(0.1, 0.1),
        "ministral-3b-2410": _price(0.04, 0.04),
        "mistral-embed": _price(0.1, 0.0),
        # Groq (names only Groq uses)
        "llama-3.3-70b-versatile": _price(0.59, 0.79),
        "llama-3.1-8b-instant": _price(0.05, 0.08),
        # Amazon Bedrock, on demand (us-east-1; regional "us."/"eu." profiles of the newest
        # Claude models cost 10% more than the global ones)
        "anthropic.claude-opus-4-5-20251101-v1:0": _price(5.0, 25.0, 0.5, 6.25),
        "global.anthropic.claude-opus-4-5-20251101-v1:0": _price(5.0, 25.0, 0.5, 6.25),
        "us.anthropic.claude-opus-4-5-20251101-v1:0": _price(5.5, 27.5, 0.55, 6.875),
        "eu.anthropic.claude-opus-4-5-20251101-v1:0": _price(5.5, 27.5, 0.55, 6.875),
        "anthropic.claude-sonnet-4-5-20250929-v1:0": claude_sonnet_4,
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0": claude_sonnet_4,
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0": claude_sonnet_45_regional,
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0": claude_sonnet_45_regional,
        "anthropic.claude-haiku-4-5-20251001-v1:0": _price(1.0, 5.0, 0.1, 1.25),
        "global.anthropic.claude-haiku-4-5-20251001-v1:0": _price(1.0, 5.0, 0.1, 1.25),
        "us.anthropic.claude-haiku-4-5-20251001-v1:0": _price(1.1, 5.5, 0.11, 1.375),
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0": _price(1.1, 5.5, 0.11, 1.375),
        "amazon.nova-pro-v1:0": _price(0.8, 3.2, 0.2),
        "us.amazon.nova-pro-v1:0": _price(0.8, 3.2, 0.2),
        "amazon.nova-lite-v1:0": _price(0.06, 0.24, 0.015),
        "us.amazon.nova-lite-v1:0": _price(0.06, 0.24, 0.015),
        "amazon.nova-micro-v1:0": _price(0.035, 0.14, 0.00875),
        "us.amazon.nova-micro-v1:0": _price(0.035, 0.14, 0.00875),
        "meta.llama3-3-70b-instruct-v1:0": _price(0.72, 0.72),
        "us.meta.llama3-3-70b-instruct-v1:0": _price(0.72, 0.72),
        "mistral.mistral-large-2402-v1:0": _price(4.0, 12.0),
        "amazon.titan-embed-text-v2:0": _price(0.02, 0.0),
    }
    # Bedrock ids of older Claude models: the same price with or without a "us."/"eu." profile.
    for model_id, price in (
        ("anthropic.claude-opus-4-1-20250805-v1:0", _price(15.0, 75.0, 1.5, 18.75)),
        ("anthropic.claude-opus-4-20250514-v1:0", _price(15.0, 75.0, 1.5, 18.75)),
        ("anthropic.claude-sonnet-4-20250514-v1:0", claude_sonnet_4),
        ("anthropic.claude-3-7-sonnet-20250219-v1:0", _price(3.0, 15.0, 0.3, 3.75)),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", _price(3.0, 15.0, 0.3, 3.75)),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", _price(3.0, 15.0, 0.3, 3.75)),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", _price(0.8, 4.0, 0.08, 1.0)),
        ("anthropic.claude-3-opus-20240229-v1:0", _price(15.0, 75.0, 1.5, 18.75)),
    ):
        for prefix in ("", "us.", "eu."):
            table[prefix + model_id] = price
    table["anthropic.claude-3-haiku-20240307-v1:0"] = _price(0.25, 1.25)
    out: dict[tuple[str | None, str], ModelPrice] = {(None, k): v for k, v in table.items()}
    for model, price in (
        ("openai/gpt-oss-120b", _price(0.15, 0.6, 0.075)),
        ("openai/gpt-oss-20b", _price(0.075, 0.3, 0.0375)),
        ("meta-llama/llama-4-maverick-17b-128e-instruct", _price(0.2, 0.6)),
        ("meta-llama/llama-4-scout-17b-16e-instruct", _price(0.11, 0.34)),
        ("qwen/qwen3-32b", _price(0.29, 0.59)),
        ("moonshotai/kimi-k2-instruct", _price(1.0, 3.0)),
    ):
        out[("groq", model)] = price
    return out


_BUILTIN = _builtin_table()
_overrides: dict[tuple[str | None, str], ModelPrice] = {}
_lock = threading.Lock()


def register_model_price(
    model: str, price: ModelPrice | None, *, provider: str | None = None
) -> None:
    """Use ``price`` for ``model`` from now on, over the built-in table (``None`` removes it).

    ``provider`` (as in the ``threadline.provider`` span attribute, e.g. ``"groq"``) limits
    the price to spans of that provider. Spans already stored keep the cost they had.
    """
    global _overrides
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError(
            f"register_model_price: model must be a non-empty string, got {model!r}."
        )
    if price is not None and not isinstance(price, ModelPrice):
        raise InvalidArgumentError(
            f"register_model_price: price must be a ModelPrice or None, got {price!r}."
        )
    key = (_provider_key(provider), model)
    with _lock:
        table = dict(_overrides)  # copy on write: readers on other threads never see a half change
        if price is None:
            table.pop(key, None)
        else:
            table[key] = price
        _overrides = table


def get_model_price(model: str, *, provider: str | None = None) -> ModelPrice | None:
    """The price used for ``model``: a registered one, else the built-in one, else ``None``."""
    if not isinstance(model, str) or not model:
        return None
    scope = _provider_key(provider)
    overrides = _overrides
    for name in _candidate_names(model, scope):
        for table in (overrides, _BUILTIN):
            found = table.get((scope, name)) if scope is not None else None
            if found is None:
                found = table.get((None, name))
            if found is not None:
                return found
    return None


def compute_cost(
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    provider: str | None = None,
) -> dict[str, float] | None:
    """``{"input_cost", "output_cost", "total_cost"}`` in USD, or ``None`` for an unknown model.

    ``input_tokens`` counts every prompt token; ``cached_input_tokens`` and
    ``cache_creation_input_tokens`` are the parts of it read from or written to the cache.
    """
    price = get_model_price(model, provider=provider)
    if price is None:
        return None
    inp, out = max(input_tokens, 0), max(output_tokens, 0)
    if price.long_context is not None and inp > (price.long_context_tokens or 0):
        price = price.long_context
    cached = min(max(cached_input_tokens, 0), inp)
    written = min(max(cache_creation_input_tokens, 0), inp - cached)
    plain = inp - cached - written
    input_cost = (
        plain * _dec(price.input)
        + cached * _dec(price.input if price.cached_input is None else price.cached_input)
        + written * _dec(price.input if price.cache_write is None else price.cache_write)
    ) / _MILLION
    output_cost = out * _dec(price.output) / _MILLION
    return {
        "input_cost": float(input_cost),
        "output_cost": float(output_cost),
        "total_cost": float(input_cost + output_cost),
    }


def cost_attribute(attributes: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The ``threadline.llm.cost`` value a span's attributes call for, or ``None``.

    ``None`` when the span already has a cost, has no token usage, names no model or a
    model without a price. Used where spans become stored rows (the SDK's exporter and the
    server's OTLP ingest); never raises on odd attribute values.
    """
    if not attributes or SpanAttributeKey.COST in attributes:
        return None
    usage = attributes.get(SpanAttributeKey.TOKEN_USAGE)
    model = attributes.get(SpanAttributeKey.MODEL)
    if not isinstance(usage, Mapping) or not isinstance(model, str):
        return None
    inp, out = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if inp is None and out is None:
        return None
    provider = attributes.get(SpanAttributeKey.PROVIDER)
    return compute_cost(
        model,
        input_tokens=inp or 0,
        output_tokens=out or 0,
        cached_input_tokens=_count(attributes.get(SpanAttributeKey.CACHED_INPUT_TOKENS)) or 0,
        cache_creation_input_tokens=(
            _count(attributes.get(SpanAttributeKey.CACHE_CREATION_INPUT_TOKENS)) or 0
        ),
        provider=provider if isinstance(provider, str) else None,
    )


def _candidate_names(model: str, provider: str | None) -> list[str]:
    """The model name as given, then without a known prefix (Gemini's ``models/``, or the
    span's own provider as in LiteLLM's ``groq/llama-3.3-70b-versatile``), then without a
    date suffix."""
    names = [model]
    bare = model
    for prefix in (*_PREFIXES, *((provider + "/",) if provider else ())):
        if bare.lower().startswith(prefix):
            bare = bare[len(prefix) :]
    if bare != model:
        names.append(bare)
    undated = _DATE_SUFFIX.sub("", bare)
    if undated != bare and undated:
        names.append(undated)
    return names


def _provider_key(provider: str | None) -> str | None:
    if not isinstance(provider, str):
        return None
    return provider.strip().lower() or None


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not 0 <= value <= _MAX_TOKENS:  # also False for NaN
        return None
    return int(value)
