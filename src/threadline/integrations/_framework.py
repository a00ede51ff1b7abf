"""What the agent-framework integrations share, whatever the framework.

A framework that has its own tracing hook (a processor list, a callback list) is traced by
installing threadline's hook there; ``HookIntegration`` installs it on ``autolog()`` and
removes exactly it on ``disable=True``, next to any patches the integration also needs.

``FrameworkSpan`` is one threadline span opened by a framework's "start" callback and
closed by its "end" callback: while it is open it is threadline's current span in the
context the framework started it in, so ``@threadline.trace`` code the framework runs
there (a tool) nests under it. For a model-call span it also marks the call as recorded,
so that the LLM client's own autologging (``threadline.openai``, ``threadline.litellm``)
does not record the same request again inside it (``_llm_call``'s ``hides_inner_calls``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from threadline.entities.span import SpanEvent
from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration, Target, _log, _wrapper
from threadline.integrations._llm_call import Config, _calling
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import MISSING, begin_span, end_span
from threadline.tracing._noop import NoOpSpan
from threadline.tracing._span import LiveSpan

Span = LiveSpan | NoOpSpan

__all__ = ["FrameworkSpan", "HookIntegration", "error_event", "handled_exception"]


class HookIntegration(Integration):
    """An integration that installs a hook object into its library (and may patch too).

    ``install(module)`` puts threadline's hook in the library and returns a handle;
    ``uninstall(handle)`` takes out exactly that hook, leaving the user's own hooks and
    the library's defaults where they are; ``present(handle)`` tells whether the hook is
    still there (a user who replaced the library's whole hook list dropped it: ``autolog()``
    then adds it again). ``targets`` are optional patches (see ``Integration``), applied
    before the hook and undone after it is removed.
    """

    def __init__(
        self,
        *,
        name: str,
        distribution: str,
        minimum_version: str,
        install: Callable[[ModuleType], Any],
        uninstall: Callable[[Any], None],
        present: Callable[[Any], bool],
        targets: Callable[[ModuleType], list[Target]] | None = None,
        import_name: str | None = None,
        hides_inner_calls: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            distribution=distribution,
            minimum_version=minimum_version,
            targets=targets or _no_targets,
            import_name=import_name,
            hides_inner_calls=hides_inner_calls,
        )
        self._install = install
        self._uninstall = uninstall
        self._present = present
        self._handle: Any = None
        self._installed = False

    def autolog(self, disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
        """Trace the library through its hook (see the class docstring)."""
        for option, value in (("disable", disable), ("log_traces", log_traces), ("silent", silent)):
            if not isinstance(value, bool):
                raise InvalidArgumentError(
                    f"threadline.{self.name}.autolog({option}=...) must be True or False, "
                    f"got {value!r}."
                )
        with self._lock:
            self.config.silent = silent
            if disable or not log_traces:
                self._undo()
                return
            if self._installed:
                if self._present(self._handle):
                    return
                self._undo()  # the user replaced the library's hooks: start over
            module = self._import()
            self._check_version(module)
            for target in self._targets(module):
                self.patches.apply(target.owner, target.method, _wrapper(target, self.config))
            try:
                self._handle = self._install(module)
            except BaseException:
                self.patches.undo()
                raise
            self._installed = True
            self.config.active = True
        if not silent:
            _log(f"threadline: autologging enabled for {self.name} {self.version(module)}.")

    @property
    def enabled(self) -> bool:
        """Whether threadline's hook is in the library now."""
        return self._installed

    def version(self, module: ModuleType) -> str:
        """The installed version; an error naming the package when ``import_name`` is some
        other library's module (``agents`` is a common name)."""
        from importlib.metadata import PackageNotFoundError

        try:
            return super().version(module)
        except PackageNotFoundError:
            raise InvalidArgumentError(
                f"threadline.{self.name}.autolog() found a module {self.import_name!r} that "
                f"is not from the {self.distribution} package. Install it with: "
                f"{self.pip_command}"
            ) from None

    def _undo(self) -> None:
        self.config.active = False
        if not self._installed:
            return
        handle, self._handle, self._installed = self._handle, None, False
        try:
            self._uninstall(handle)
        finally:
            if self.patches:
                self.patches.undo()
        if not self.config.silent:
            _log(f"threadline: autologging disabled for {self.name}.")


def _no_targets(module: ModuleType) -> list[Target]:
    return []


class FrameworkSpan:
    """A threadline span that mirrors one span (or call) of a framework."""

    __slots__ = ("calling", "data", "prev_calling", "prev_span", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.prev_span: Any = None
        self.prev_calling: Any = None
        self.calling: Config | None = None
        self.data: Any = None  # what the integration keeps with the span until it ends

    @classmethod
    def open(
        cls,
        name: str,
        span_type: str,
        parent: Any = MISSING,
        attributes: dict[str, Any] | None = None,
    ) -> FrameworkSpan | None:
        """Begin a span under ``parent`` (default: the current span); None if tracing is off."""
        span = begin_span(name, span_type, attributes, parent=parent)
        return None if span is None else cls(span)

    @property
    def live(self) -> LiveSpan | None:
        """The span if it records (not the non-recording span of an unsampled trace)."""
        span = self.span
        return span if isinstance(span, LiveSpan) and not span._ended else None

    def make_current(self, model_call: Config | None = None) -> None:
        """Make the span current in this context; for a model call (``model_call`` is the
        integration's config) also hide the LLM client's own recording of it."""
        self.prev_span = current_span.get()
        current_span.set(self.span)
        if model_call is not None:
            self.calling = model_call
            self.prev_calling = _calling.get()
            _calling.set(model_call)

    def release(self) -> None:
        """Undo ``make_current`` in whatever context the framework ends the span.

        A value is put back only where this span still holds it: a framework that ends
        spans out of order (or in another task) must not make a span current again."""
        _put_back(current_span, self.span, self.prev_span)
        if self.calling is not None:
            _put_back(_calling, self.calling, self.prev_calling)
            self.calling = None

    def end(self, outputs: Any = MISSING, exc: BaseException | None = None) -> None:
        end_span(self.span, outputs, exc=exc)


def _put_back(var: ContextVar[Any], value: Any, previous: Any) -> None:
    if var.get() is value:
        var.set(previous)


def handled_exception(*texts: Any) -> BaseException | None:
    """The exception being handled right now whose text is one of ``texts``, looked for
    along its cause and context chain; None when there is none.

    A framework that reports an error only as text (``span.error``) ends its span while
    the exception propagates; matching the text keeps an unrelated exception that the
    caller happens to be handling from being recorded instead.
    """
    exc = sys.exc_info()[1]
    wanted = {t for t in texts if isinstance(t, str) and t}
    seen = 0
    while exc is not None and seen < 8:
        if str(exc) in wanted:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def error_event(kind: str, message: str) -> SpanEvent:
    """An ``exception`` event for an error the framework reported without an exception."""
    return SpanEvent(
        name="exception",
        attributes={"exception.type": kind, "exception.message": message},
    )
