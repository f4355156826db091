"""Manifest content: the JSON target of one synthetic document, shaped like the real data.

The target follows `vlmocr.schema` exactly (keys in FIELD_ORDER, every value a string)
and its totals are the sums of the product rows, as in the Roboflow data. Values imitate
the real ones: routes like `D452-SU-275`, shipment ids like `K77912144793`, docks like
`D05`, product lines like `223606 - CASE OF MICROFIBER SPONGES`, Faker addresses and names.

A `Document` adds what the page shows beyond the target (company, labels' wording, a
note): decoration a model has to learn to ignore. Everything is drawn from one seeded
`random.Random` plus a seeded Faker instance, so a seed always gives the same document.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import random
import re
import string
import threading
from dataclasses import dataclass, field
from typing import Any

from vlmocr.schema import (
    FIELD_ORDER,
    FILLABLE_FIELDS,
    FOOTER_FIELDS,
    HEADER_FIELDS,
    PRODUCT_FIELDS,
    TOTAL_FIELDS,
)

PACKS: tuple[str, ...] = (
    "CASE OF", "CASE OF", "CASE OF", "BOX OF", "BOX OF", "12PK OF", "6PK OF", "24PK OF",
    "PACK OF", "BAG OF", "CARTON OF", "TUB OF", "JUG OF", "ROLL OF",
)
ITEMS: tuple[str, ...] = (
    "MICROFIBER SPONGES", "STAIN REMOVERS", "DISH SOAP", "SQUEEGEES", "DISINFECTANT WIPES",
    "MULTI-SURFACE SPRAY", "PAPER TOWELS", "TRASH BAGS", "GLASS CLEANER", "BLEACH",
    "LAUNDRY DETERGENT", "FLOOR CLEANER", "TOILET PAPER", "HAND SOAP", "SCRUB BRUSHES",
    "MOP HEADS", "NITRILE GLOVES", "AIR FRESHENER", "FABRIC SOFTENER", "DRYER SHEETS",
    "OVEN CLEANER", "DRAIN OPENER", "BATHROOM CLEANER", "STEEL WOOL PADS", "DUSTER REFILLS",
    "SPONGE MOPS", "BROOMS", "DUST PANS", "HAND SANITIZER", "FACIAL TISSUES", "NAPKINS",
    "PAPER PLATES", "FOAM CUPS", "ALUMINUM FOIL", "PLASTIC WRAP", "ZIPPER BAGS",
    "CARPET SHAMPOO", "WOOD POLISH", "LIME REMOVER", "TILE GROUT CLEANER", "DISH PODS",
    "RUBBER GLOVES", "SPRAY BOTTLES", "SHOP TOWELS", "LINT ROLLERS", "WINDOW WIPES",
    "PINE CLEANER", "AMMONIA CLEANER", "DEGREASER", "ODOR ELIMINATOR", "TOILET BOWL CLEANER",
    "SCOURING POWDER", "LAUNDRY PODS", "STARCH SPRAY", "BABY WIPES", "CANDLES",
)
#: Quantities seen in the real data are mostly powers of two; some are not.
ROUND_QUANTITIES: tuple[int, ...] = (1, 2, 2, 4, 4, 4, 6, 8, 8, 12, 16, 24, 32, 32, 48, 64)

#: How each field may be labelled on a page (the first is the plain name).
LABELS: dict[str, tuple[str, ...]] = {
    "route": ("Route", "Route No.", "Route #"),
    "pallet_number": ("Pallet", "Pallet #", "Pallet No."),
    "delivery_date": ("Delivery Date", "Deliver On", "Del. Date"),
    "load": ("Load", "Load #", "Load No."),
    "dock": ("Dock", "Dock Door", "Door"),
    "shipment_id": ("Shipment ID", "Shipment #", "Shipment No."),
    "destination": ("Destination", "Ship To", "Deliver To"),
    "asn_number": ("ASN Number", "ASN #", "ASN"),
    "salesman": ("Salesman", "Sales Rep", "Salesperson"),
    "description": ("Description", "Item Description", "Product"),
    "cases": ("Cases", "Cs", "Case Qty"),
    "sales_units": ("Sales Units", "Units", "SU"),
    "layers": ("Layers", "Lyrs", "Layer"),
    "total_cases": ("Total Cases", "Cases Total", "Tot. Cases"),
    "total_units": ("Total Units", "Units Total", "Tot. Units"),
    "total_layers": ("Total Layers", "Layers Total", "Tot. Layers"),
    "printed_date": ("Printed", "Print Date", "Printed On"),
    "page_number": ("Page", "Page No.", "Pg"),
}
TITLES: tuple[str, ...] = (
    "PALLET LOAD MANIFEST", "PALLET MANIFEST", "LOAD MANIFEST", "SHIPPING MANIFEST",
    "PALLET CONTENTS", "DELIVERY MANIFEST",
)
NOTES: tuple[str, ...] = (
    "Check pallet wrap before unloading.", "Report damages within 24 hours.",
    "Keep this sheet with the pallet.", "Do not double stack.", "Driver to sign on delivery.",
    "Count cases at receiving.", "Fragile items on top layer.",
)


@dataclass(frozen=True)
class Document:
    """One manifest: its JSON target plus what the page shows beyond it."""

    target: dict[str, Any]
    company: str
    title: str
    note: str
    labels: dict[str, str] = field(default_factory=dict)
    upper_labels: bool = False

    def label(self, name: str) -> str:
        text = self.labels.get(name) or LABELS[name][0]
        return text.upper() if self.upper_labels else text

    @property
    def products(self) -> list[dict[str, str]]:
        return self.target["products"]


_LOCAL = threading.local()


def _faker() -> Any:
    """This thread's Faker (re-seeded per document, so threads must not share one)."""
    fake = getattr(_LOCAL, "faker", None)
    if fake is None:
        from faker import Faker

        fake = _LOCAL.faker = Faker("en_US")
    return fake


def _quantity(rng: random.Random, high: int) -> int:
    if rng.random() < 0.75:
        return rng.choice([q for q in ROUND_QUANTITIES if q <= high])
    return rng.randint(1, high)


def _date(rng: random.Random) -> _dt.datetime:
    start = _dt.datetime(2022, 1, 1)
    return start + _dt.timedelta(days=rng.randrange(5 * 365), minutes=rng.randrange(24 * 60))


def make_products(rng: random.Random, n: int) -> list[dict[str, str]]:
    """`n` product rows with distinct item codes and item names."""
    codes = rng.sample(range(100000, 1000000), n)
    items = rng.sample(ITEMS, n)
    rows = []
    for code, item in zip(codes, items):
        rows.append({
            "description": f"{code} - {rng.choice(PACKS)} {item}",
            "cases": str(_quantity(rng, 64)),
            "sales_units": str(_quantity(rng, 64)),
            "layers": str(rng.randint(1, 6)),
        })
    return rows


def make_target(rng: random.Random, n_products: int, seed: int) -> dict[str, Any]:
    """A complete target: header, `n_products` rows, totals = column sums, footer."""
    fake = _faker()
    fake.seed_instance(seed)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    delivered = _date(rng)
    printed = delivered - _dt.timedelta(days=rng.randrange(0, 45), minutes=rng.randrange(600))
    products = make_products(rng, n_products)
    values: dict[str, Any] = {
        "route": f"{rng.choice(letters)}{rng.randint(100, 999)}-{rng.choice(letters)}"
        f"{rng.choice(letters)}-{rng.randint(100, 999)}",
        "pallet_number": str(rng.randint(1, 60)),
        "delivery_date": f"{delivered.month}/{delivered.day}/{delivered.year}",
        "load": str(rng.randint(1, 9)),
        "dock": f"{rng.choice('DDDBEW')}{rng.randint(1, 40):02d}",
        "shipment_id": f"{rng.choice(letters)}{rng.randrange(10**10, 10**11)}",
        "destination": fake.address().replace("\n", ", "),
        "asn_number": str(rng.randrange(10**9, 10**10)),
        "salesman": f"{fake.first_name()} {fake.last_name()}".upper(),
        "products": products,
        "total_cases": str(sum(int(p["cases"]) for p in products)),
        "total_units": str(sum(int(p["sales_units"]) for p in products)),
        "total_layers": str(sum(int(p["layers"]) for p in products)),
        "printed_date": printed.strftime("%m/%d/%Y %H:%M"),
        "page_number": str(rng.randint(1, 99)),
    }
    return {key: values[key] for key in FIELD_ORDER}


def make_document(rng: random.Random, n_products: int, seed: int) -> Document:
    """A document: the target plus company, title, note and the wording of its labels."""
    target = make_target(rng, n_products, seed)
    fake = _faker()
    labels = {
        name: options[0] if rng.random() < 0.5 else rng.choice(options)
        for name, options in LABELS.items()
    }
    return Document(
        target=target,
        company=fake.company().upper() if rng.random() < 0.5 else fake.company(),
        title=rng.choice(TITLES),
        note=rng.choice(NOTES),
        labels=labels,
        upper_labels=rng.random() < 0.35,
    )


def blank_fields(doc: Document, rng: random.Random, filled: int) -> Document:
    """`doc` with all but `filled` of FILLABLE_FIELDS left blank ("" in the target, no value on the page).

    The fields kept are drawn with `rng`; the labels stay on the page, as on a form whose
    blanks were not filled in.
    """
    if not 0 <= filled <= len(FILLABLE_FIELDS):
        raise ValueError(f"filled must be within 0..{len(FILLABLE_FIELDS)}, got {filled}")
    blank = set(rng.sample(FILLABLE_FIELDS, len(FILLABLE_FIELDS) - filled))
    if not blank:
        return doc
    target = {key: "" if key in blank else value for key, value in doc.target.items()}
    return dataclasses.replace(doc, target=target)


#: Words of an address that say what kind of line it is, not whose: kept by `novel_names`.
_ADDRESS_KEEP = frozenset({"Apt", "Suite", "Box", "Unit"})
_WORD = re.compile(r"[A-Za-z]+")


@functools.cache
def _address_keep() -> frozenset[str]:
    """_ADDRESS_KEEP and Faker's street suffixes (`Road`, `Inlet`...), built once a process."""
    from faker.providers.address.en_US import Provider

    return _ADDRESS_KEEP | frozenset(Provider.street_suffixes)


def _novel_word(rng: random.Random, like: str) -> str:
    """Letters drawn uniformly from A-Z, as long as `like` and in its case (Capitalized, UPPER, lower)."""
    letters = "".join(rng.choice(string.ascii_lowercase) for _ in like)
    if like.isupper():
        return letters.upper()
    return letters[0].upper() + letters[1:] if like[0].isupper() else letters


def novel_names(doc: Document, rng: random.Random) -> Document:
    """`doc` with the salesman's name and the destination's names made of random letters.

    Faker's names and places come from lists a language model learns, so a model can write
    "JAMES YOUNG" where the page says "JAMES YODER" after reading two letters. Here every
    word of the salesman field, and every word of the destination except the house number, street
    suffix, "Apt."/"Suite", state and ZIP code, is replaced by a word of the same length and case
    whose letters are drawn uniformly: only reading gives them. Lengths are kept, so the page's
    layout fits as before. Blank fields stay blank.
    """
    target = dict(doc.target)
    keep = _address_keep()

    def address_word(match: re.Match[str]) -> str:
        word = match.group(0)
        if word in keep or (word.isupper() and len(word) <= 4):  # states, PSC / USNS / FPO lines
            return word
        return _novel_word(rng, word)

    if target.get("salesman"):
        target["salesman"] = _WORD.sub(lambda m: _novel_word(rng, m.group(0)), target["salesman"])
    if target.get("destination"):
        target["destination"] = _WORD.sub(address_word, target["destination"])
    return dataclasses.replace(doc, target=target)


def check_target(target: dict[str, Any]) -> list[str]:
    """Problems with a target (schema shape, string values, totals); empty when valid.

    Totals must be filled; the other header and footer fields may be blank ("").
    """
    problems = []
    if list(target) != list(FIELD_ORDER):
        problems.append(f"keys {list(target)} differ from {list(FIELD_ORDER)}")
    for name in (*HEADER_FIELDS, *FOOTER_FIELDS):
        value = target.get(name)
        if not isinstance(value, str):
            problems.append(f"{name} must be a string")
        elif not value and name in TOTAL_FIELDS:
            problems.append(f"{name} must be a non-empty string")
    rows = target.get("products") or []
    for i, row in enumerate(rows):
        if list(row) != list(PRODUCT_FIELDS) or not all(isinstance(v, str) for v in row.values()):
            problems.append(f"products[{i}] must have string fields {list(PRODUCT_FIELDS)}")
    for total, column in (("total_cases", "cases"), ("total_units", "sales_units"),
                          ("total_layers", "layers")):
        try:
            if int(target[total]) != sum(int(r[column]) for r in rows):
                problems.append(f"{total} is not the sum of the {column} column")
        except (KeyError, ValueError, TypeError):
            problems.append(f"{total} or the {column} column is not a number")
    return problems
