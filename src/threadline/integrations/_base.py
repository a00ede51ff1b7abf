"""What every ``threadline.<library>.autolog()`` does, whatever the library.

An ``Integration`` imports its library only when ``autolog()`` is called, checks the
installed version, and patches the library's public methods with the shared LLM-call
wrapper (``_llm_call``), or installs a hook object in the library (a callback handler, a
trace processor: ``install``/``uninstall``), or both. Calling ``autolog()`` again changes
nothing; ``disable=True`` or ``log_traces=False`` put every original back (the identical
objects) and take out exactly the hook it installed.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._llm_call import Config, LLMCall, wrap_async, wrap_sync
from threadline.integrations._patching import PatchSet
from threadline.integrations._streams import (
    AsyncStreamManagerProxy,
    StreamManagerProxy,
    wrap_manager,
)


class Target:
    """One method to trace: ``owner.method``, how it returns (``kind``) and its ``LLMCall``.

    ``kind`` is ``"sync"`` (returns a response or a stream), ``"async"`` (its result is
    awaited), ``"manager"`` / ``"async_manager"`` (returns a context manager that makes
    the request when entered, as ``messages.stream()`` does). ``owner`` is a class, or a
    module for a public module-level function.

    ``wrap`` (instead of a ``call``): ``wrap(original, config)`` builds the wrapper itself,
    for one method through which several kinds of call pass (botocore's clients).
    """

    __slots__ = ("call", "kind", "method", "owner", "wrap")

    def __init__(
        self,
        owner: type | ModuleType,
        method: str,
        kind: str,
        call: LLMCall | None,
        wrap: Callable[[Any, Config], Any] | None = None,
    ) -> None:
        self.owner = owner
        self.method = method
        self.kind = kind
        self.call = call
        self.wrap = wrap


def _wrapper(target: Target, config: Config) -> Callable[[Any], Any]:
    call, kind, wrap = target.call, target.kind, target.wrap
    if wrap is not None:
        return lambda original: wrap(original, config)
    if call is None:
        raise ValueError(f"target {target.method!r} has neither a call nor a wrap")
    if kind == "sync":
        return lambda original: wrap_sync(original, call, config)
    if kind == "async":
        return lambda original: wrap_async(original, call, config)
    if kind in ("manager", "async_manager"):
        proxy = StreamManagerProxy if kind == "manager" else AsyncStreamManagerProxy
        return lambda original: wrap_manager(original, call, config, proxy)
    raise ValueError(f"unknown target kind {kind!r}")


class Integration:
    """Autologging for one library.

    ``targets(module)``: the methods to patch (none for a library traced by a hook alone).
    ``install(module, config)``: put threadline's hook object in the library, after the
    patches, and return it (kept as ``handler``); ``uninstall(handler)`` takes out exactly
    that object, leaving the user's own hooks and the library's defaults where they are;
    ``present(handler)`` tells whether it is still there (a user who replaced the library's
    whole hook list dropped it: ``autolog()`` then installs it again). Without ``present``
    an installed hook is taken to stay.
    """

    def __init__(
        self,
        *,
        name: str,
        distribution: str,
        minimum_version: str,
        targets: Callable[[ModuleType], list[Target]] | None = None,
        import_name: str | None = None,
        hides_inner_calls: bool = False,
        install: Callable[[ModuleType, Config], Any] | None = None,
        uninstall: Callable[[Any], None] | None = None,
        present: Callable[[Any], bool] | None = None,
    ) -> None:
        if (install is None) != (uninstall is None):
            raise ValueError(f"integration {name!r}: install and uninstall go together")
        self.name = name
        self.import_name = import_name or name
        self.distribution = distribution
        self.minimum_version = minimum_version
        self._targets = targets or _no_targets
        self.config = Config(name, hides_inner_calls)  # see ``Config``
        self.patches = PatchSet(name)
        self._install = install
        self._uninstall = uninstall
        self._present = present
        self.handler: Any = None  # what ``install`` returned, while it is installed
        self._installed = False
        self._lock = threading.Lock()

    @property
    def pip_command(self) -> str:
        return f'pip install "{self.distribution}>={self.minimum_version}"'

    def autolog(self, disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
        """Trace every call of the library (see the module docstring)."""
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
            if self.enabled:
                if self._present is None or not self._installed or self._present(self.handler):
                    return
                self._undo()  # the user replaced the library's hooks: start over
            module = self._import()
            self._check_version(module)
            for target in self._targets(module):
                self.patches.apply(target.owner, target.method, _wrapper(target, self.config))
            if self._install is not None:
                try:
                    self.handler = self._install(module, self.config)
                except BaseException:
                    self.patches.undo()
                    raise
                self._installed = True
            self.config.active = True
        if not silent:
            _log(f"threadline: autologging enabled for {self.name} {self.version(module)}.")

    @property
    def enabled(self) -> bool:
        """Whether the library's methods are patched or threadline's hook is installed now."""
        return self._installed or bool(self.patches)

    def _undo(self) -> None:
        self.config.active = False
        if not self.enabled:
            return
        handler, installed = self.handler, self._installed
        self.handler, self._installed = None, False
        try:
            if installed and self._uninstall is not None:
                self._uninstall(handler)
        finally:
            if self.patches:
                self.patches.undo()
        if not self.config.silent:
            _log(f"threadline: autologging disabled for {self.name}.")

    def _import(self) -> ModuleType:
        try:
            return importlib.import_module(self.import_name)
        except ImportError as exc:
            raise InvalidArgumentError(
                f"threadline.{self.name}.autolog() needs the {self.distribution} package, "
                f"which could not be imported ({exc}). Install it with: {self.pip_command}"
            ) from exc

    def version(self, module: ModuleType) -> str:
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            return version
        from importlib.metadata import version as dist_version

        return dist_version(self.distribution)

    def _check_version(self, module: ModuleType) -> None:
        installed = self.version(module)
        if parse_version(installed) < parse_version(self.minimum_version):
            raise InvalidArgumentError(
                f"threadline.{self.name}.autolog() supports {self.distribution} "
                f"{self.minimum_version} or newer; {installed} is installed. "
                f"Upgrade it with: {self.pip_command}"
            )


def _no_targets(module: ModuleType) -> list[Target]:
    return []


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``"1.2.3rc1"`` → ``(1, 2, 3)``."""
    parts = []
    for piece in text.split(".")[:3]:
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts + [0] * (3 - len(parts)))


def _log(message: str) -> None:
    import logging

    logging.getLogger("threadline").info(message)
