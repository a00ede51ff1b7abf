"""``threadline.litellm.autolog()``: trace every LiteLLM call, whatever the provider behind it.

Patched: the module-level functions ``litellm.completion`` and ``acompletion`` (chat),
``text_completion`` and ``atext_completion``, ``embedding`` and ``aembedding``, which is
what ``litellm.completion(...)`` and litellm's ``Router`` call. A name imported before
``autolog()`` (``from litellm import completion``) still holds the untraced function: call
``litellm.completion(...)``, or turn autologging on before that import. Arguments given by
position (``completion("gpt-4o", messages)``) are recorded by name.

Provider and model: litellm's own reading of the model name (``"groq/llama3-8b"`` →
provider ``groq``, model ``llama3-8b``; a bare ``"gpt-4o-mini"`` → ``openai``), or
``"litellm"`` when litellm cannot tell it. Requests and replies are in OpenAI's format,
which LiteLLM speaks for every provider, and are read with the openai integration's
functions.

Streams (``CustomStreamWrapper``, read with ``for`` or ``async for``) are returned proxied.
When the caller left ``stream_options`` unset and litellm supports it for the provider,
``{"include_usage": True}`` is sent so that token usage is known; the usage-only chunk this
adds is recorded and not passed on.

LiteLLM reaches some providers through their own SDKs (the openai SDK, for embeddings).
With that library's autologging also on, those inner calls are not recorded apart: one
span per LiteLLM call, its tokens counted once. ``api_key`` and every argument named like
a credential (``…_key``, ``…_token``, ``…secret…``, ``…credential…``, headers, ``client``)
are left out of the span. ``completion(..., acompletion=True)`` (a coroutine returned by
the synchronous function) is recorded without its reply: use ``acompletion()``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations import openai as oa
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import Binder, LLMCall, Request, materialize, put_attributes
from threadline.integrations._streams import DualStreamProxy
from threadline.tracing._span import LiveSpan

PROVIDER = "litellm"  # when litellm cannot tell which provider serves the model

__all__ = ["INTEGRATION", "autolog"]

_PROVIDER_KEY = SpanAttributeKey.PROVIDER

# --- the request --------------------------------------------------------------------------

_SECRET_SUFFIXES = ("key", "key_id", "token", "token_provider", "headers")
_SECRET_WORDS = ("secret", "password", "credential")
_NOT_SECRET = frozenset({"prompt_cache_key"})
_UNRECORDED = frozenset({"client", "extra_query"})
_secret_names: dict[str, bool] = {}


def _is_secret(name: str) -> bool:
    """Whether an argument may hold a credential (litellm takes many, one per provider:
    ``api_key``, ``aws_secret_access_key``, ``azure_ad_token``, ``vertex_credentials``…)."""
    known = _secret_names.get(name)
    if known is None:
        lower = name.lower()
        known = lower not in _NOT_SECRET and (
            lower in _UNRECORDED
            or lower.endswith(_SECRET_SUFFIXES)
            or any(word in lower for word in _SECRET_WORDS)
        )
        if len(_secret_names) < 1024:
            _secret_names[name] = known
    return known


def _inputs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The span inputs: every argument but credentials, headers and SDK clients."""
    return {k: v for k, v in kwargs.items() if not _is_secret(k)}


class _Recorder:
    """How litellm's calls are recorded: which provider serves the model, and the
    ``start`` / ``record`` hooks of the shared wrapper."""

    __slots__ = ("litellm", "providers")

    def __init__(self, litellm: ModuleType) -> None:
        self.litellm = litellm
        self.providers = frozenset(
            str(getattr(p, "value", p)) for p in getattr(litellm, "provider_list", ())
        )

    # --- provider and model

    def resolve(self, kwargs: dict[str, Any]) -> tuple[str | None, str | None]:
        """``(provider, model)`` read from the arguments without side effects.

        ``litellm.get_llm_provider`` is not called here: for a model it cannot route it
        prints to stdout, which the failing call itself will do."""
        model = kwargs.get("model")
        if not isinstance(model, str):
            return None, None
        custom = kwargs.get("custom_llm_provider")
        if isinstance(custom, str) and custom:
            return custom, model.removeprefix(custom + "/")
        prefix, slash, rest = model.partition("/")
        if slash and prefix in self.providers:
            return prefix, rest
        info = getattr(self.litellm, "model_cost", {}).get(model)
        provider = info.get("litellm_provider") if isinstance(info, dict) else None
        return (provider if isinstance(provider, str) else None), model

    def after_success(self, span: LiveSpan, request: Request) -> None:
        """A call that succeeded has a provider litellm can name: ask it if still unknown."""
        if span.attributes.get(_PROVIDER_KEY) != PROVIDER:
            return
        kwargs = request.kwargs
        try:
            provider = self.litellm.get_llm_provider(
                kwargs["model"],
                custom_llm_provider=kwargs.get("custom_llm_provider"),
                api_base=kwargs.get("api_base"),
            )[1]  # (model, provider, api key from the environment: never kept, api base)
        except Exception:  # litellm routed it some other way (a custom handler)
            return
        if isinstance(provider, str) and provider:
            put_attributes(span, {_PROVIDER_KEY: provider})

    def start(self, request: Request, span: LiveSpan, inputs: tuple[str, ...]) -> str | None:
        """Record the inputs, provider and model; returns the provider if known."""
        kwargs = request.kwargs
        materialize(kwargs, inputs)
        span.set_inputs(_inputs(kwargs))
        provider, model = self.resolve(kwargs)
        request.model = model
        attributes: dict[str, Any] = {_PROVIDER_KEY: provider or PROVIDER}
        if model is not None:
            attributes[SpanAttributeKey.MODEL] = model
        put_attributes(span, attributes)
        return provider

    def ask_for_stream_usage(self, request: Request, provider: str | None) -> None:
        """Ask a stream for its token usage when the caller did not say and litellm
        supports ``stream_options`` for the provider (it rejects unsupported options)."""
        kwargs = request.kwargs
        if kwargs.get("stream") is not True or kwargs.get("stream_options") is not None:
            return
        if provider is None or request.model is None:
            return
        try:
            supported = self.litellm.get_supported_openai_params(
                model=request.model, custom_llm_provider=provider
            )
        except Exception:
            return
        if supported and "stream_options" in supported:
            kwargs["stream_options"] = {"include_usage": True}
            request.hide_usage = True

    # --- the hooks, per kind of call

    def chat_start(self, request: Request, span: LiveSpan) -> None:
        provider = self.start(request, span, ("messages", "tools"))
        kwargs = request.kwargs
        tools = oa._chat_tools(kwargs.get("tools"))
        if tools:
            span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
        request.messages = [oa._chat_message(m) for m in kwargs.get("messages") or ()]
        self.ask_for_stream_usage(request, provider)

    def chat_record(self, span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
        oa._chat_record(span, request, out)
        self.after_success(span, request)

    def chat_stream(self, request: Request, inner: Any) -> _ChatStream:
        return _ChatStream(request, inner, self)

    def text_start(self, request: Request, span: LiveSpan) -> None:
        self.ask_for_stream_usage(request, self.start(request, span, ("prompt",)))

    def text_record(self, span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
        oa._completion_record(span, request, out)
        self.after_success(span, request)

    def text_stream(self, request: Request, inner: Any) -> _TextStream:
        return _TextStream(request, inner, self)

    def embedding_start(self, request: Request, span: LiveSpan) -> None:
        self.start(request, span, ("input",))

    def embedding_record(self, span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
        oa._embeddings_record(span, request, out)
        self.after_success(span, request)


# --- streams ------------------------------------------------------------------------------


def _add(acc: Any, chunk: Any) -> bool:
    """One chunk of a litellm stream. Its ``usage`` attribute exists only when usage was
    asked for: on a last chunk without choices (hidden when only tracing asked) or on the
    finishing one."""
    if acc.first is None:
        acc.first = chunk
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        acc.usage = usage
    choices = chunk.choices
    if choices:
        acc.add_choices(choices)
        return True
    return usage is None or not acc.hide_usage


class _ChatStream(oa._ChatStream):
    """A streamed chat completion (litellm's chunks, OpenAI's shape)."""

    __slots__ = ("recorder",)
    add = _add

    def __init__(self, request: Request, inner: Any, recorder: _Recorder) -> None:
        super().__init__(request, inner)
        self.recorder = recorder

    def finish(self, span: LiveSpan) -> Any:
        out = super().finish(span)
        self.recorder.after_success(span, self.request)
        return out


class _TextStream(oa._CompletionStream):
    """A streamed text completion."""

    __slots__ = ("recorder",)
    add = _add

    def __init__(self, request: Request, inner: Any, recorder: _Recorder) -> None:
        super().__init__(request, inner)
        self.recorder = recorder

    def finish(self, span: LiveSpan) -> Any:
        out = super().finish(span)
        self.recorder.after_success(span, self.request)
        return out


# --- what is patched ----------------------------------------------------------------------


def _binder(names: tuple[str, ...]) -> Binder:
    """Positional arguments moved to keywords (``completion(model, messages)``)."""

    def bind(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not args or len(args) > len(names) or any(n in kwargs for n in names[: len(args)]):
            return args, kwargs  # nothing to move, or a call that fails as it would untraced
        return (), {**dict(zip(names, args)), **kwargs}

    return bind


# function -> (kind, span type, hooks, positional parameter names)
_SPECS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "completion": ("sync", SpanType.CHAT_MODEL, "chat", ("model", "messages")),
    "acompletion": ("async", SpanType.CHAT_MODEL, "chat", ("model", "messages")),
    "text_completion": ("sync", SpanType.LLM, "text", ("prompt", "model")),
    "atext_completion": ("async", SpanType.LLM, "text", ("prompt", "model")),
    "embedding": ("sync", SpanType.EMBEDDING, "embedding", ("model", "input")),
    "aembedding": ("async", SpanType.EMBEDDING, "embedding", ("model", "input")),
}


def _targets(litellm: ModuleType) -> list[Target]:
    recorder = _Recorder(litellm)
    stream_types = tuple(
        cls
        for cls in (
            getattr(litellm, "CustomStreamWrapper", None),
            getattr(litellm, "TextCompletionStreamWrapper", None),
        )
        if isinstance(cls, type)
    )

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    targets = []
    for function, (kind, span_type, hooks, names) in _SPECS.items():
        if not callable(getattr(litellm, function, None)):
            continue
        acc = getattr(recorder, f"{hooks}_stream", None)
        call = LLMCall(
            f"litellm.{function}",
            span_type,
            getattr(recorder, f"{hooks}_start"),
            getattr(recorder, f"{hooks}_record"),
            is_stream if acc is not None else None,
            acc,
            DualStreamProxy if acc is not None else None,
            bind=_binder(names),
        )
        targets.append(Target(litellm, function, kind, call))
    return targets


INTEGRATION = Integration(
    name="litellm",
    distribution="litellm",
    minimum_version="1.40.0",
    targets=_targets,
    hides_inner_calls=True,
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every LiteLLM completion, text completion and embedding call as a span.

    Args:
        disable: remove the tracing and restore litellm's original functions.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
