"""The pallet-manifest target schema (Roboflow pallet-load-manifest-json).

Every value is a string, as in the real data. String fields carry a pattern that
forbids control characters: structured-output engines (xgrammar) otherwise let raw
control characters into strings and `json.loads` rejects the result.
"""

from __future__ import annotations

from typing import Any

#: Top-level scalar fields, in the order the real data lists them (before products).
HEADER_FIELDS: tuple[str, ...] = (
    "route",
    "pallet_number",
    "delivery_date",
    "load",
    "dock",
    "shipment_id",
    "destination",
    "asn_number",
    "salesman",
)
PRODUCT_FIELDS: tuple[str, ...] = ("description", "cases", "sales_units", "layers")
FOOTER_FIELDS: tuple[str, ...] = (
    "total_cases",
    "total_units",
    "total_layers",
    "printed_date",
    "page_number",
)
FIELD_ORDER: tuple[str, ...] = (*HEADER_FIELDS, "products", *FOOTER_FIELDS)
#: Totals are the sums of the product columns; every other scalar field may be blank ("").
TOTAL_FIELDS: tuple[str, ...] = ("total_cases", "total_units", "total_layers")
FILLABLE_FIELDS: tuple[str, ...] = tuple(
    name for name in (*HEADER_FIELDS, *FOOTER_FIELDS) if name not in TOTAL_FIELDS
)

#: Printable text only: no C0 control characters, no DEL.
STRING_PATTERN = r"^[^\u0000-\u001f\u007f]*$"


def _string(max_length: int = 200) -> dict[str, Any]:
    return {"type": "string", "pattern": STRING_PATTERN, "maxLength": max_length}


def manifest_schema(max_products: int = 12) -> dict[str, Any]:
    """JSON schema of one manifest, usable for validation and constrained decoding."""
    product = {
        "type": "object",
        "properties": {name: _string() for name in PRODUCT_FIELDS},
        "required": list(PRODUCT_FIELDS),
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {name: _string() for name in HEADER_FIELDS}
    properties["products"] = {"type": "array", "items": product, "maxItems": max_products}
    properties.update({name: _string() for name in FOOTER_FIELDS})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "PalletManifest",
        "type": "object",
        "properties": properties,
        "required": list(FIELD_ORDER),
        "additionalProperties": False,
    }


def dumps_target(target: Any) -> str:
    """Serialise a target the way training and constrained serving both produce it.

    Compact separators: vLLM's structured output with `disable_any_whitespace` emits
    exactly this, so the model is trained on what serving will force.
    """
    import json

    return json.dumps(target, ensure_ascii=False, separators=(",", ":"))
