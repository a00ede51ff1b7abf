"""Replacing a library's methods with traced wrappers, and putting the originals back.

Public methods of public classes are replaced (``setattr`` on the class), and public
module-level functions (``ollama.chat``) on their module. One exception, explained in
``bedrock.py``: botocore's ``BaseClient._make_api_call``, the single method every
generated client method goes through. Instances are never patched. Each replacement
remembers exactly what its owner held, so undoing it restores the identical object (or
removes the attribute if it was inherited).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from threadline.tracing import _safety


class Patch:
    """One replaced attribute: where, the original, and the wrapper put in its place."""

    __slots__ = ("had_own", "name", "original", "owner", "wrapper")

    def __init__(
        self, owner: type | ModuleType, name: str, original: Any, wrapper: Any, had_own: bool
    ):
        self.owner = owner
        self.name = name
        self.original = original
        self.wrapper = wrapper
        self.had_own = had_own


class PatchSet:
    """The patches of one integration, applied and undone together."""

    def __init__(self, integration: str) -> None:
        self.integration = integration
        self.patches: list[Patch] = []

    def __bool__(self) -> bool:
        return bool(self.patches)

    def apply(
        self, owner: type | ModuleType, name: str, make_wrapper: Callable[[Any], Any]
    ) -> None:
        """Replace ``owner.name`` by ``make_wrapper(original)``."""
        had_own = name in vars(owner)
        original = vars(owner)[name] if had_own else getattr(owner, name)
        wrapper = make_wrapper(original)
        setattr(owner, name, wrapper)
        self.patches.append(Patch(owner, name, original, wrapper, had_own))

    def undo(self) -> list[str]:
        """Restore every original; returns the attributes someone else had replaced since.

        Those are left as they are (their wrapper calls ours, which the caller makes inert),
        so that undoing our patch never removes another tool's.
        """
        stacked = []
        for patch in reversed(self.patches):
            current = vars(patch.owner).get(patch.name)
            if current is not patch.wrapper:
                owner_name = getattr(patch.owner, "__qualname__", patch.owner.__name__)
                stacked.append(f"{owner_name}.{patch.name}")
                continue
            if patch.had_own:
                setattr(patch.owner, patch.name, patch.original)
            else:
                delattr(patch.owner, patch.name)
        self.patches.clear()
        if stacked:
            _safety.log_once(
                f"autolog-stacked:{self.integration}",
                f"threadline: {', '.join(stacked)} were wrapped again by other code after "
                f"threadline.{self.integration}.autolog(); threadline's wrappers there now "
                "pass calls through untraced instead of being removed.",
            )
        return stacked
