"""The layer every agent-framework integration is built on (``threadline.<framework>``).

A framework that has a hook of its own (a callback list, a trace-processor list, span and
event handlers, an event bus) is traced by putting one threadline object there, not by
patching it (one that emits OpenTelemetry spans itself goes through the OpenTelemetry
bridge instead, as ``pydantic_ai.py`` does). What every such integration needs is here:

- ``FrameworkIntegration`` (``_integration``): ``autolog()`` imports the framework, checks
  its version and calls ``install(module, config)``, which adds the hook object and
  returns it (``INTEGRATION.handler``); ``autolog(disable=True)`` calls
  ``uninstall(handler)``, which takes out exactly that object; ``present(handler)`` lets
  ``autolog()`` add it again after the user replaced the framework's list. ``targets``
  patch only what the hook does not report (see ``integrations/_base.py``).
- ``SpanTable`` and ``FrameworkSpan`` (``_spans``): one threadline span per framework span,
  keyed by the framework's ids; its parent; the span current while the framework's code
  runs, so ``@threadline.trace`` code and LLM client autologging nest under it, with the
  client's own span of a model call hidden; ends out of order or in another context;
  aliases (an inner call folded into its outer one); batches. ``nested=True`` for a
  framework that wraps each call (a decorator, a ``with``): cheaper, no batches.
- ``handled_exception`` / ``error_event`` (``_errors``): an error the framework reports
  only as text; ``Document`` (``_documents``): a retriever span's documents.

A callback-based integration, in outline (``dspy.py`` is a complete small one)::

    class _Callback:                          # subclassed from the framework's base class
        def __init__(self, config):           # made by install(module, config)
            self.config, self.active = config, True   # uninstall() sets active = False
            self.spans = SpanTable(FrameworkSpan)

        def on_start(self, fid, parent_fid, name, inputs, is_model_call):
            if not self.active or not RT.enabled:     # uninstalled, or tracing off
                return
            try:
                entry = self.spans.open(fid, name, SpanType.CHAIN,
                                        parent=self.spans.get(parent_fid),
                                        calling=self.config if is_model_call else KEEP)
                if entry is not None and entry.live is not None:
                    entry.live.set_inputs(inputs)
            except Exception as exc:
                report(self.config, "start", exc)     # logged, never raised

        def on_end(self, fid, outputs, error=None):
            try:
                self.spans.finish(fid, outputs, exc=error)
            except Exception as exc:
                report(self.config, "end", exc)

    INTEGRATION = FrameworkIntegration(name=..., distribution=..., minimum_version=...,
                                       install=_install, uninstall=_uninstall,
                                       hides_inner_calls=True)

A processor-based one (``openai_agents.py``) is the same with the processor's
``on_span_start`` / ``on_span_end``; a framework whose ends can come before their
children's, or in another context, needs nothing more: the table handles both. To record
more at the end than ``finish`` takes, ``entry = spans.pop(fid)``, then ``end_span``.
Keep what the integration gathers until the end in ``entry.data``, or in a subclass of
``FrameworkSpan`` with slots of its own (``llama_index/_record.py``,
``langchain/_run.py``). Tests of the layer itself: ``tests/integrations/test_framework.py``.
"""

from __future__ import annotations

from threadline.integrations._framework._documents import Document
from threadline.integrations._framework._errors import error_event, handled_exception
from threadline.integrations._framework._integration import FrameworkIntegration
from threadline.integrations._framework._spans import KEEP, FrameworkSpan, SpanTable

__all__ = [
    "KEEP",
    "Document",
    "FrameworkIntegration",
    "FrameworkSpan",
    "SpanTable",
    "error_event",
    "handled_exception",
]
