"""Donut-compatible normalized tree edit distance (nTED) accuracy, exact and fast.

Donut (clovaai/donut `donut/util.py`, `JSONParseEvaluator.cal_acc`) scores a parse as
``max(0, 1 - TED(pred, gold) / TED({}, gold))`` over trees built from `normalize_dict`
output (`construct_tree_from_dict`), with zss's Zhang-Shasha distance and these costs:
a leaf costs len(text) to insert or delete and a non-leaf 1; two leaves cost their
Levenshtein distance to relabel, two non-leaves 0 or 1, a leaf and a non-leaf 1 + len(leaf).

`reference_ted` is exactly that (zss). It takes 0.1-0.2 s for one manifest pair (zss
records a full edit script in numpy arrays), far too slow for 10,000 predictions, so
`tree_edit_distance` proves the answer cheaply first:

- identical trees → 0; an empty prediction → the sum of gold's insert costs (root kept).
- an upper bound: the cost of the best top-down mapping (Selkow), a valid edit script;
- a lower bound: the weighted string edit distance of the preorder (and postorder) node
  sequences — every tree mapping is also an alignment of those sequences.
- equal bounds are the exact distance; otherwise `_zhang_shasha` computes it: the same
  algorithm as zss without the edit script (`zhang_shasha`), ≈ 10 ms a manifest pair. Labels containing
  Donut's "<leaf>" marker (its leaf test would misfire) go to zss itself.

Tests check every path against zss. How each distance was settled is counted in
`TED_STATS` (the benchmark reports it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from vlmocr.eval.normalize import donut_normalize, levenshtein
from vlmocr.eval.zhang_shasha import zhang_shasha

LEAF = "<leaf>"
#: How each distance was settled: "identical", "empty", "bounds", "dp", "zss".
TED_STATS: Counter[str] = Counter()

try:  # a core dependency; only the large lower-bound tables use it
    import numpy as _np
    from rapidfuzz.distance import Levenshtein as _RF_LEV
    from rapidfuzz.process import cdist as _cdist
except ImportError:  # pragma: no cover
    _np = None
    _cdist = None


class _Tree:
    """A Donut tree in preorder arrays: label/text, leaf flag, children, costs, value."""

    __slots__ = ("text", "leaf", "kids", "cost", "total", "value", "post", "safe")

    def __init__(self, data: Any) -> None:
        self.text: list[str] = []
        self.leaf: list[bool] = []
        self.kids: list[list[int]] = []
        self.cost: list[int] = []
        self.total: list[int] = []
        self.value: list[Any] = []  # the normalized value under the node: subtree equality
        self.post: list[int] = []
        self.safe = True  # False if a label contains "<leaf>" (Donut's leaf test misfires)
        self._add("<root>", data)

    def _add(self, label: str, data: Any) -> int:
        index = len(self.text)
        if LEAF in label:
            self.safe = False
        self.text.append(label)
        self.leaf.append(False)
        kids: list[int] = []
        self.kids.append(kids)
        self.cost.append(1)
        self.total.append(0)
        self.value.append(data)
        total = 1
        if isinstance(data, dict):
            for key, value in data.items():
                kid = self._add(key, value)
                kids.append(kid)
                total += self.total[kid]
        elif all(isinstance(item, dict) for item in data):
            for item in data:
                kid = self._add("<subtree>", item)
                kids.append(kid)
                total += self.total[kid]
        else:
            for item in data:
                text = str(item)
                if LEAF in text:
                    self.safe = False
                kid = len(self.text)
                self.text.append(text)
                self.leaf.append(True)
                self.kids.append([])
                self.cost.append(len(text))
                self.total.append(len(text))
                self.value.append(text)
                self.post.append(kid)
                kids.append(kid)
                total += len(text)
        self.total[index] = total
        self.post.append(index)
        return index

    def same(self, i: int, other: _Tree, j: int) -> bool:
        """Whether subtree i of this tree equals subtree j of `other` (labels and shape)."""
        return (self.leaf[i] == other.leaf[j] and self.text[i] == other.text[j]
                and self.value[i] == other.value[j])


def _update(a: _Tree, i: int, b: _Tree, j: int) -> int:
    la, lb = a.leaf[i], b.leaf[j]
    if la and lb:
        return levenshtein(a.text[i], b.text[j])
    if la:
        return 1 + a.cost[i]
    if lb:
        return 1 + b.cost[j]
    return int(a.text[i] != b.text[j])


# --- upper bound: best top-down (Selkow) mapping --------------------------------------


def _forest_td(a: _Tree, ka: list[int], b: _Tree, kb: list[int], full: bool) -> int:
    lo, hi_a, hi_b = 0, len(ka), len(kb)
    while lo < hi_a and lo < hi_b and a.same(ka[lo], b, kb[lo]):
        lo += 1
    while hi_a > lo and hi_b > lo and a.same(ka[hi_a - 1], b, kb[hi_b - 1]):
        hi_a -= 1
        hi_b -= 1
    xs, ys = ka[lo:hi_a], kb[lo:hi_b]
    if not xs or not ys:
        return sum(a.total[x] for x in xs) + sum(b.total[y] for y in ys)
    if not full and len(xs) == len(ys):
        return sum(_tree_td(a, x, b, y, full) for x, y in zip(xs, ys))
    previous = [0]
    for y in ys:
        previous.append(previous[-1] + b.total[y])
    for x in xs:
        dx = a.total[x]
        current = [previous[0] + dx]
        for col, y in enumerate(ys, 1):
            current.append(
                min(previous[col] + dx, current[col - 1] + b.total[y],
                    previous[col - 1] + _tree_td(a, x, b, y, full))
            )
        previous = current
    return previous[-1]


def _tree_td(a: _Tree, i: int, b: _Tree, j: int, full: bool) -> int:
    if a.same(i, b, j):
        return 0
    return _update(a, i, b, j) + _forest_td(a, a.kids[i], b, b.kids[j], full)


# --- lower bound: weighted string edit distance of node sequences -------------------


def _sequence_lb(a: _Tree, order_a: list[int], b: _Tree, order_b: list[int]) -> int:
    lo, hi_a, hi_b = 0, len(order_a), len(order_b)
    key_a = [(a.leaf[i], a.text[i]) for i in order_a]
    key_b = [(b.leaf[j], b.text[j]) for j in order_b]
    while lo < hi_a and lo < hi_b and key_a[lo] == key_b[lo]:
        lo += 1
    while hi_a > lo and hi_b > lo and key_a[hi_a - 1] == key_b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    xs, ys = order_a[lo:hi_a], order_b[lo:hi_b]
    if not xs or not ys:
        return sum(a.cost[x] for x in xs) + sum(b.cost[y] for y in ys)
    if _np is not None and len(xs) * len(ys) > 400:
        return _sequence_lb_numpy(a, xs, b, ys)
    previous = [0]
    for y in ys:
        previous.append(previous[-1] + b.cost[y])
    for x in xs:
        dx = a.cost[x]
        current = [previous[0] + dx]
        for col, y in enumerate(ys, 1):
            current.append(
                min(previous[col] + dx, current[col - 1] + b.cost[y],
                    previous[col - 1] + _update(a, x, b, y))
            )
        previous = current
    return previous[-1]


def _sequence_lb_numpy(a: _Tree, xs: list[int], b: _Tree, ys: list[int]) -> int:
    """Same DP, one row at a time: D[x] = C + cummin(row - C), C = cumulative insert costs."""
    np = _np
    leaf_a = np.array([a.leaf[x] for x in xs])
    leaf_b = np.array([b.leaf[y] for y in ys])
    cost_a = np.array([a.cost[x] for x in xs], dtype=np.int64)
    cost_b = np.array([b.cost[y] for y in ys], dtype=np.int64)
    # non-leaf pairs: label differs; mixed pairs: 1 + len(leaf); leaf pairs: Levenshtein
    labels_a = [a.text[x] for x in xs]
    labels_b = [b.text[y] for y in ys]
    sub = (np.array(labels_a, dtype=object)[:, None] != np.array(labels_b, dtype=object)[None, :])
    sub = sub.astype(np.int64)
    mixed = leaf_a[:, None] != leaf_b[None, :]
    sub = np.where(mixed, 1 + np.where(leaf_a[:, None], cost_a[:, None], cost_b[None, :]), sub)
    ia, ib = np.flatnonzero(leaf_a), np.flatnonzero(leaf_b)
    if len(ia) and len(ib):
        dist = _cdist([labels_a[k] for k in ia], [labels_b[k] for k in ib],
                      scorer=_RF_LEV.distance, dtype=np.int64, workers=1)
        sub[np.ix_(ia, ib)] = dist
    cum = np.concatenate(([0], np.cumsum(cost_b)))
    previous = cum.copy()
    row = np.empty_like(previous)
    for k in range(len(xs)):
        dx = cost_a[k]
        row[0] = previous[0] + dx
        row[1:] = np.minimum(previous[1:] + dx, previous[:-1] + sub[k])
        previous = cum + np.minimum.accumulate(row - cum)
    return int(previous[-1])


# --- the reference (zss) -------------------------------------------------------------


def _zss_tree(data: Any, name: str = "<root>") -> Any:
    from zss import Node

    node = Node(name)
    if isinstance(data, dict):
        for key, value in data.items():
            node.addkid(_zss_tree(value, key))
    elif isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            for item in data:
                node.addkid(_zss_tree(item, "<subtree>"))
        else:
            for item in data:
                node.addkid(Node(f"{LEAF}{item}"))
    else:  # pragma: no cover - normalized data is always dicts and lists
        raise TypeError(f"cannot build a tree from {type(data).__name__}")
    return node


def _zss_insert(node: Any) -> int:
    return len(node.label.replace(LEAF, "")) if LEAF in node.label else 1


def _zss_update(n1: Any, n2: Any) -> int:
    l1, l2 = n1.label, n2.label
    leaf1, leaf2 = LEAF in l1, LEAF in l2
    if leaf1 and leaf2:
        return levenshtein(l1.replace(LEAF, ""), l2.replace(LEAF, ""))
    if leaf2 and not leaf1:
        return 1 + len(l2.replace(LEAF, ""))
    if leaf1 and not leaf2:
        return 1 + len(l1.replace(LEAF, ""))
    return int(l1 != l2)


def reference_ted(pred_norm: Any, gold_norm: Any) -> float:
    """Donut's TED between two `donut_normalize`d values, computed by zss (slow, exact)."""
    import zss

    return float(
        zss.distance(
            _zss_tree(pred_norm), _zss_tree(gold_norm),
            get_children=zss.Node.get_children,
            insert_cost=_zss_insert, remove_cost=_zss_insert, update_cost=_zss_update,
        )
    )


def reference_accuracy(pred: Any, gold: Any) -> float:
    """Donut's `cal_acc` verbatim in behaviour (zss for both distances); raw JSON inputs."""
    gold_norm = donut_normalize(gold)
    denominator = reference_ted(donut_normalize({}), gold_norm)
    if denominator == 0:
        return 1.0 if not donut_normalize(pred) else 0.0
    return max(0.0, 1.0 - reference_ted(donut_normalize(pred), gold_norm) / denominator)


# --- the fast exact distance ---------------------------------------------------------


def tree_edit_distance(pred_norm: Any, gold_norm: Any) -> float:
    """Donut's TED between two `donut_normalize`d values; equals `reference_ted` exactly."""
    if pred_norm == gold_norm:
        TED_STATS["identical"] += 1
        return 0.0
    a, b = _Tree(pred_norm), _Tree(gold_norm)
    if a.safe and b.safe:
        if not a.kids[0]:
            TED_STATS["empty"] += 1
            return float(b.total[0] - 1)
        if not b.kids[0]:
            TED_STATS["empty"] += 1
            return float(a.total[0] - 1)
        upper = _tree_td(a, 0, b, 0, False)
        lower = _sequence_lb(a, list(range(len(a.text))), b, list(range(len(b.text))))
        if lower < upper:
            upper = min(upper, _tree_td(a, 0, b, 0, True))
        if lower < upper:
            lower = max(lower, _sequence_lb(a, a.post, b, b.post))
        if lower == upper:
            TED_STATS["bounds"] += 1
            return float(upper)
        TED_STATS["dp"] += 1
        return float(zhang_shasha(a, b))
    TED_STATS["zss"] += 1
    return reference_ted(pred_norm, gold_norm)


def _insert_cost(data: Any) -> int | None:
    """Sum of insert costs of the nodes under a normalized value; None if a label has "<leaf>"."""
    total = 0
    if isinstance(data, dict):
        for key, value in data.items():
            below = _insert_cost(value)
            if below is None or LEAF in key:
                return None
            total += 1 + below
    elif all(isinstance(item, dict) for item in data):
        for item in data:
            below = _insert_cost(item)
            if below is None:
                return None
            total += 1 + below
    else:
        for item in data:
            text = str(item)
            if LEAF in text:
                return None
            total += len(text)
    return total


def gold_size(gold_norm: Any) -> float:
    """TED({}, gold): the cost of inserting every gold node but the root."""
    if not gold_norm:
        return 0.0
    total = _insert_cost(gold_norm)
    if total is None:
        return reference_ted({}, gold_norm)
    return float(total)


def ted_accuracy(pred: Any, gold: Any, *, normalized: bool = False) -> float:
    """Donut's nTED accuracy, max(0, 1 - TED(pred, gold) / TED({}, gold)).

    Pass `normalized=True` if both values already went through `donut_normalize`.
    A prediction of None scores as {} (accuracy 0 unless gold is empty too). Donut
    divides by zero on an empty gold; here that scores 1.0 for an empty prediction, else 0.
    """
    pred_norm = pred if normalized else donut_normalize(pred)
    gold_norm = gold if normalized else donut_normalize(gold)
    if pred_norm is None:
        pred_norm = {}
    denominator = gold_size(gold_norm)
    if denominator == 0:
        return 1.0 if not pred_norm else 0.0
    return max(0.0, 1.0 - tree_edit_distance(pred_norm, gold_norm) / denominator)
