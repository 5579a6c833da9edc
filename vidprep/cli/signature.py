"""Share option groups between Typer commands without repeating long signatures.

Typer reads a command's options from its signature; `with_options` appends the parameters of whole option groups
to a command's own signature, and the command receives them in ``**options``. Each option is declared once.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Opt:
    """One CLI option: the Python parameter name, its Annotated[type, typer.Option(...)] and the default."""

    name: str
    annotation: Any
    default: Any = None


def with_options(*groups: tuple[Opt, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: extend the command's signature with the options of ``groups`` (keyword-only)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in sig.parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own}
        extra = [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation)
            for group in groups
            for o in group
            if o.name not in taken
        ]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def pick(options: dict[str, Any], group: tuple[Opt, ...]) -> dict[str, Any]:
    """The options of one group that the user actually set (None means "not given")."""
    return {o.name: options[o.name] for o in group if options.get(o.name) is not None}
