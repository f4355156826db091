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
