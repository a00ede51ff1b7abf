"""The shape of a retrieved document on a RETRIEVER span: ``outputs["documents"]``.

Used by LlamaIndex and meant for every new framework integration. LangChain's retriever
spans keep their own shape (a list of ``{"page_content", "metadata", "id"}``, LangChain's
field names), which its tests and users' traces already have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Document"]


@dataclass
class Document:
    """One retrieved document (a node, a chunk), as a retriever span's
    ``outputs["documents"]`` holds it.

    Span processors see these objects (``doc.id``, as in the FAQ); the stored trace holds
    them as dicts with the same keys. ``metadata`` must be a fresh value (a snapshot) the
    caller's objects do not share.
    """

    id: str | None
    text: str | None
    score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
