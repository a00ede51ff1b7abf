"""Well-known ids and keys, in a module light enough for the tracing hot path to import."""

from __future__ import annotations

TRACE_ID_PREFIX = "tr-"
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


class SpanAttributeKey:
    """Attribute keys threadline itself reads and writes."""

    TOKEN_USAGE = "threadline.token_usage"  # {"input_tokens", "output_tokens", "total_tokens"}
    MODEL = "threadline.model"
    PROVIDER = "threadline.provider"
    ABORTED = "threadline.aborted"
    GENERATOR_CLOSED_EARLY = "threadline.generator_closed_early"
    # Chat spans in one shape for every provider (the UI renders them as a conversation):
    CHAT_MESSAGES = "threadline.chat.messages"  # [{"role", "content", "tool_calls"?, ...}]
    CHAT_TOOLS = "threadline.chat.tools"  # [{"name", "description", "parameters"}]
    FINISH_REASON = "threadline.finish_reason"
    CACHED_INPUT_TOKENS = "threadline.token_usage.cached_input_tokens"
    CACHE_CREATION_INPUT_TOKENS = "threadline.token_usage.cache_creation_input_tokens"
    REASONING_TOKENS = "threadline.token_usage.reasoning_tokens"
    # USD cost of an LLM call from its tokens and model (threadline.pricing); set when the
    # model's price is known: {"input_cost", "output_cost", "total_cost"}
    COST = "threadline.llm.cost"


class TraceMetadataKey:
    """Well-known keys of ``TraceInfo.trace_metadata``."""

    RUN_ID = "run_id"
    USER = "user"
    SESSION_ID = "session_id"
    TOKEN_USAGE = "token_usage"  # JSON: {"input_tokens", "output_tokens", "total_tokens"}
    COST = "cost"  # JSON: {"input_cost", "output_cost", "total_cost"}, USD, summed over spans
