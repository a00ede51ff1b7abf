"""``FrameworkIntegration``: autologging for an agent framework traced through its own hook."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from threadline.errors import InvalidArgumentError
from threadline.integrations._base import Integration

__all__ = ["FrameworkIntegration"]


class FrameworkIntegration(Integration):
    """An ``Integration`` whose ``install``/``uninstall`` (and optional ``present``) put a
    hook object in the framework (a callback handler, a trace processor, a pair of
    handlers): see ``Integration``; ``targets`` only for what the hook does not report.

    Its version is the installed distribution's (a module's ``__version__`` can lag behind
    it: ``llama_index.core`` 0.14.0 says 0.13.6), else the module's; a module with neither
    belongs to some other package (``agents`` is a common name): an error says which
    package to install. Read once per module: the package metadata is slow to read, and
    every ``autolog()`` checks the version.
    """

    _known: tuple[Any, str] | None = None  # (the module, its version) once read

    def version(self, module: ModuleType) -> str:
        known = self._known
        if known is not None and known[0] is module:
            return known[1]
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        version: Any
        try:
            version = dist_version(self.distribution)
        except PackageNotFoundError:
            version = getattr(module, "__version__", None)
            if not isinstance(version, str):
                raise InvalidArgumentError(
                    f"threadline.{self.name}.autolog() found a module {self.import_name!r} "
                    f"that is not from the {self.distribution} package. Install it with: "
                    f"{self.pip_command}"
                ) from None
        self._known = (module, version)  # the module's code does not change: nor its version
        return version
