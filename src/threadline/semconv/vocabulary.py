"""The attribute keys of each vocabulary threadline reads, and what their values mean.

OpenInference (``openinference.span.kind``, ``input.value``, ``llm.*``), the OpenTelemetry
GenAI conventions (``gen_ai.*``), OpenLLMetry (``traceloop.*``, ``llm.request.type``,
``gen_ai.prompt.N.*``) and threadline's own ``threadline.*`` keys. Data only.
"""

from __future__ import annotations

from threadline.entities.keys import TraceMetadataKey

# --- span types --------------------------------------------------------------------
OPENINFERENCE_KIND = "openinference.span.kind"
TRACELOOP_KIND = "traceloop.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"
LLM_REQUEST_TYPE = "llm.request.type"  # OpenLLMetry's kind of LLM call

GENAI_TYPES = {
    "chat": "CHAT_MODEL",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "embeddings": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "invoke_workflow": "CHAIN",
    "retrieval": "RETRIEVER",
}
TRACELOOP_TYPES = {
    "workflow": "CHAIN",
    "task": "CHAIN",
    "agent": "AGENT",
    "tool": "TOOL",
    "llm": "LLM",
}
LLM_REQUEST_TYPES = {
    "chat": "CHAT_MODEL",
    "completion": "LLM",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
}
LLM_TYPES = frozenset({"LLM", "CHAT_MODEL"})  # spans that may carry a conversation

# --- model, provider, tokens --------------------------------------------------------
MODEL_KEYS = ("llm.model_name", "gen_ai.request.model", "gen_ai.response.model")
PROVIDER_KEYS = ("gen_ai.system", "gen_ai.provider.name", "llm.provider", "llm.system")
INPUT_TOKEN_KEYS = (
    "llm.token_count.prompt",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
)
OUTPUT_TOKEN_KEYS = (
    "llm.token_count.completion",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
)
TOTAL_TOKEN_KEYS = ("llm.token_count.total", "gen_ai.usage.total_tokens", "llm.usage.total_tokens")
# Parts of the input tokens read from / written to the provider's cache (priced apart).
CACHE_READ_KEYS = (
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
)
CACHE_WRITE_KEYS = (
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING_KEYS = (
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.reasoning.output_tokens",
)
TOKEN_KEYS = frozenset(INPUT_TOKEN_KEYS + OUTPUT_TOKEN_KEYS + TOTAL_TOKEN_KEYS)
FINISH_REASONS = "gen_ai.response.finish_reasons"

# --- trace metadata -------------------------------------------------------------------
METADATA_KEYS = (
    ("session.id", TraceMetadataKey.SESSION_ID),
    ("user.id", TraceMetadataKey.USER),
    ("traceloop.association.properties.session_id", TraceMetadataKey.SESSION_ID),
    ("traceloop.association.properties.user_id", TraceMetadataKey.USER),
)

# --- payloads and messages ------------------------------------------------------------
# (key, prefix-of-flattened-list) pairs per direction, in the order they are tried.
OPENINFERENCE_MESSAGES = {"input": "llm.input_messages.", "output": "llm.output_messages."}
OPENLLMETRY_MESSAGES = {"input": "gen_ai.prompt.", "output": "gen_ai.completion."}
GENAI_MESSAGES = {"input": "gen_ai.input.messages", "output": "gen_ai.output.messages"}
LEGACY_GENAI = {"input": "gen_ai.prompt", "output": "gen_ai.completion"}
TRACELOOP_ENTITY = {"input": "traceloop.entity.input", "output": "traceloop.entity.output"}
TOOL_CALL = {"input": "gen_ai.tool.call.arguments", "output": "gen_ai.tool.call.result"}
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"

# GenAI message events (as span events) and the role each one carries.
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
# Older GenAI conventions: the whole prompt / completion as JSON text on one event.
CONTENT_EVENTS = {"input": "gen_ai.content.prompt", "output": "gen_ai.content.completion"}

# Tools offered to the model.
GENAI_TOOLS = "gen_ai.tool.definitions"
OPENINFERENCE_TOOLS = "llm.tools."  # llm.tools.N.tool.json_schema
OPENLLMETRY_TOOLS = (
    "llm.request.functions."  # llm.request.functions.N.{name,description,parameters}
)
