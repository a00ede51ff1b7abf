"""Binding a call's arguments to parameter names, as a snapshot, cheaply.

Built once per decorated function: a plain function of (args, kwargs) that returns the
inputs dict (``self``/``cls`` left out), without ``inspect.Signature.bind`` on the hot path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from threadline.tracing._serialize import snapshot

_SCALARS = frozenset({str, int, float, bool, type(None)})
_P = inspect.Parameter
Binder = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def make_binder(func: Callable[..., Any]) -> Binder:
    """A function mapping ``(args, kwargs)`` to a snapshot of ``{param_name: value}``."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return _generic_binder

    positional = [p.name for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    skip = 1 if positional and positional[0] in ("self", "cls") else 0
    names = tuple(positional[skip:])
    var_pos = next((p.name for p in params if p.kind is _P.VAR_POSITIONAL), None)
    var_kw = next((p.name for p in params if p.kind is _P.VAR_KEYWORD), None)
    named = frozenset(p.name for p in params if p.kind is not _P.VAR_POSITIONAL)
    n_named = len(names)

    if var_pos is None and var_kw is None:
        if skip:

            def bind_method(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
                inputs = {
                    n: (v if type(v) in _SCALARS else snapshot(v))
                    for n, v in zip(names, args[1:])
                }
                if kwargs:
                    inputs.update(_snap_items(kwargs))
                return inputs

            return bind_method

        def bind_plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            inputs = {n: (v if type(v) in _SCALARS else snapshot(v)) for n, v in zip(names, args)}
            if kwargs:
                inputs.update(_snap_items(kwargs))
            return inputs

        return bind_plain

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


def _snap_items(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if type(v) in _SCALARS else snapshot(v)) for k, v in kwargs.items()}


def _generic_binder(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args:
        inputs["args"] = snapshot(args)
    if kwargs:
        inputs.update(_snap_items(kwargs))
    return inputs
