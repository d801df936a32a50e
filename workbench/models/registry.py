"""Model registry in timm's style: `@register_model` entry points, `create_model(name)`, `list_models(pattern)`.

Registered names are the entry-point function names; each full model has a tiny `test_*` sibling that runs on CPU in
well under a second (the tests sweep `list_models("test_*")`).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

_MODEL_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register a model entry point under its function name (decorator)."""
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS and _MODEL_ENTRYPOINTS[name] is not fn:
        raise ValueError(f"a model named {name!r} is already registered; give the entry point another name")
    _MODEL_ENTRYPOINTS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching an fnmatch pattern, e.g. `list_models("test_*")`."""
    return sorted(name for name in _MODEL_ENTRYPOINTS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    """Whether `name` is a registered model."""
    return name in _MODEL_ENTRYPOINTS


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the entry point's defaults.

    Args:
        name: registered name, e.g. "agw_r50", "mm_vit_b16", "test_vi_resnet".
        **kwargs: constructor arguments (e.g. `num_classes=395`, `pretrained="weights.safetensors"`).

    Raises:
        ValueError: unknown name (the message lists close matches and all registered names).
    """
    if name not in _MODEL_ENTRYPOINTS:
        close = difflib.get_close_matches(name, _MODEL_ENTRYPOINTS, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Registered models: {list_models()}")
    return _MODEL_ENTRYPOINTS[name](**kwargs)
