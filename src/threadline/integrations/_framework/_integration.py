"""``FrameworkIntegration``: autologging for an agent framework traced through its own hook."""

from __future__ import annotations

from types import ModuleType

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
    package to install.
    """

    def version(self, module: ModuleType) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return dist_version(self.distribution)
        except PackageNotFoundError:
            pass
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            return version
        raise InvalidArgumentError(
            f"threadline.{self.name}.autolog() found a module {self.import_name!r} that "
            f"is not from the {self.distribution} package. Install it with: "
            f"{self.pip_command}"
        )
