"""How a value in a JSON answer is named: `key`, `parent.key`, `products[2].cases`.

One naming for the stages that point at values: the evaluation's per-field results
(`eval.align`) and the client's per-field confidence (`client.confidence`), so a confidence
map can be read against the evaluation's fields.
"""

from __future__ import annotations


def field_path(base: str, key: str) -> str:
    """The name of `key` of the object at `base` ('' is the document itself)."""
    return f"{base}.{key}" if base else key


def item_path(base: str, index: int | str) -> str:
    """The name of item `index` of the list at `base` (`index` may be a label, e.g. 'pred 3')."""
    return f"{base}[{index}]"


def leaves(value: object, base: str = "") -> list[tuple[str, object]]:
    """(name, value) of every leaf of a parsed JSON document, in its order (empty objects and lists have none)."""
    out: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out += leaves(item, field_path(base, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += leaves(item, item_path(base, index))
    else:
        out.append((base, value))
    return out
