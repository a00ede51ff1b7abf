"""Binding a call's arguments to parameter names, as a snapshot, cheaply.

Built once per decorated function: a plain function of (args, kwargs) that returns the
inputs dict (``self``/``cls`` left out), without ``inspect.Signature.bind`` on the hot path.
"""

from __future__ import annotations

from threadline.tracing._serialize import snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


def _parameters(
    func: Callable[..., Any],
) -> tuple[list[str], list[str], str | None, str | None] | None:
    """(positional names, keyword-only names, *args name, **kwargs name), or ``None``.

    Read from the code object for plain functions (no ``inspect`` import, which is slow);
    ``inspect.signature`` for anything else (partials, wrapped functions, callables).
    """
    code = getattr(func, "__code__", None)
    if code is not None and not hasattr(func, "__wrapped__"):
        n_pos = code.co_argcount  # includes positional-only parameters
        names = code.co_varnames
        positional = list(names[:n_pos])
        kw_only = list(names[n_pos : n_pos + code.co_kwonlyargcount])
        index = n_pos + code.co_kwonlyargcount
        var_pos = var_kw = None
        if code.co_flags & _CO_VARARGS:
            var_pos = names[index]
            index += 1
        if code.co_flags & _CO_VARKEYWORDS:
            var_kw = names[index]
        return positional, kw_only, var_pos, var_kw
    import inspect

    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return None
    kind = inspect.Parameter
    return (
        [p.name for p in params if p.kind in (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD)],
        [p.name for p in params if p.kind is kind.KEYWORD_ONLY],
        next((p.name for p in params if p.kind is kind.VAR_POSITIONAL), None),
        next((p.name for p in params if p.kind is kind.VAR_KEYWORD), None),
    )


def make_binder(func: Callable[..., Any]) -> Binder:
    """A function mapping ``(args, kwargs)`` to a snapshot of ``{param_name: value}``."""
    found = _parameters(func)
    if found is None:
        return _generic_binder
    positional, kw_only, var_pos, var_kw = found
    skip = 1 if positional and positional[0] in ("self", "cls") else 0
    names = tuple(positional[skip:])
    named = frozenset(positional) | frozenset(kw_only)
    n_named = len(names)

    if var_pos is None and var_kw is None:

        def bind_simple(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            inputs = dict(zip(names, args[1:] if skip else args))
            if kwargs:
                inputs.update(kwargs)
            for key, value in inputs.items():
                if type(value) not in _SCALARS:
                    inputs[key] = snapshot(value)  # same keys: safe while iterating
            return inputs

        return bind_simple

    def bind_variadic(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        args = args[skip:]
        inputs = {n: snapshot(v) for n, v in zip(names, args)}
        if var_pos is not None and len(args) > n_named:
            inputs[var_pos] = snapshot(args[n_named:])
        if kwargs:
            extra = {}
            for key, value in kwargs.items():
                if key in named or var_kw is None:
                    inputs[key] = snapshot(value)
                else:
                    extra[key] = value
            if extra and var_kw is not None:
                inputs[var_kw] = snapshot(extra)
        return inputs

    return bind_variadic


def _generic_binder(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args:
        inputs["args"] = snapshot(args)
    if kwargs:
        inputs.update(snapshot(kwargs))
    return inputs
