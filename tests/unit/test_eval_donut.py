"""Donut compatibility: normalize_dict / flatten / F1 / nTED accuracy on hand-worked cases,
and the fast exact tree edit distance against zss on random trees."""

from __future__ import annotations

import copy
import random

import pytest
import zss

from vlmocr.eval import ted
from vlmocr.eval.normalize import donut_flatten, donut_normalize, levenshtein
from vlmocr.eval.ted import reference_accuracy, reference_ted, ted_accuracy, tree_edit_distance
from vlmocr.eval.zhang_shasha import zhang_shasha


# --- an independent transcription of clovaai/donut's JSONParseEvaluator (donut/util.py) ---
def _edit_distance(a: str, b: str) -> int:  # nltk.edit_distance, unit costs, no transpositions
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


class DonutEvaluator:
    def normalize_dict(self, data):
        if not data:
            return {}
        if isinstance(data, dict):
            new_data = dict()
            for key in sorted(data.keys(), key=lambda k: (len(k), k)):
                value = self.normalize_dict(data[key])
                if value:
                    if not isinstance(value, list):
                        value = [value]
                    new_data[key] = value
        elif isinstance(data, list):
            if all(isinstance(item, dict) for item in data):
                new_data = []
                for item in data:
                    item = self.normalize_dict(item)
                    if item:
                        new_data.append(item)
            else:
                new_data = [str(item).strip() for item in data if type(item) in {str, int, float} and str(item).strip()]
        else:
            new_data = [str(data).strip()]
        return new_data

    @staticmethod
    def flatten(data):
        out = []

        def _flatten(value, key=""):
            if type(value) is dict:
                for child_key, child_value in value.items():
                    _flatten(child_value, f"{key}.{child_key}" if key else child_key)
            elif type(value) is list:
                for value_item in value:
                    _flatten(value_item, key)
            else:
                out.append((key, value))

        _flatten(data)
        return out

    def cal_f1(self, preds, answers):
        total_tp, total_fn_or_fp = 0, 0
        for pred, answer in zip(preds, answers):
            pred, answer = self.flatten(self.normalize_dict(pred)), self.flatten(self.normalize_dict(answer))
            for field in pred:
                if field in answer:
                    total_tp += 1
                    answer.remove(field)
                else:
                    total_fn_or_fp += 1
            total_fn_or_fp += len(answer)
        return total_tp / (total_tp + total_fn_or_fp / 2)

    @staticmethod
    def update_cost(node1, node2):
        label1, label2 = node1.label, node2.label
        leaf1, leaf2 = "<leaf>" in label1, "<leaf>" in label2
        if leaf1 and leaf2:
            return _edit_distance(label1.replace("<leaf>", ""), label2.replace("<leaf>", ""))
        if not leaf1 and leaf2:
            return 1 + len(label2.replace("<leaf>", ""))
        if leaf1 and not leaf2:
            return 1 + len(label1.replace("<leaf>", ""))
        return int(label1 != label2)

    @staticmethod
    def insert_and_remove_cost(node):
        label = node.label
        return len(label.replace("<leaf>", "")) if "<leaf>" in label else 1

    def construct_tree_from_dict(self, data, node_name=None):
        node = zss.Node(node_name or "<root>")
        if isinstance(data, dict):
            for key, value in data.items():
                node.addkid(self.construct_tree_from_dict(value, key))
        elif isinstance(data, list):
            if all(isinstance(item, dict) for item in data):
                for item in data:
                    node.addkid(self.construct_tree_from_dict(item, "<subtree>"))
            else:
                for item in data:
                    node.addkid(zss.Node(f"<leaf>{item}"))
        return node

    def _distance(self, a, b):
        return zss.distance(a, b, get_children=zss.Node.get_children,
                            insert_cost=self.insert_and_remove_cost, remove_cost=self.insert_and_remove_cost,
                            update_cost=self.update_cost, return_operations=False)

    def cal_acc(self, pred, answer):
        pred = self.construct_tree_from_dict(self.normalize_dict(pred))
        answer = self.construct_tree_from_dict(self.normalize_dict(answer))
        empty = self.construct_tree_from_dict(self.normalize_dict({}))
        return max(0, 1 - self._distance(pred, answer) / self._distance(empty, answer))


DONUT = DonutEvaluator()

MENU = {"menu": [{"nm": "cake", "cnt": "2"}, {"nm": "juice", "cnt": "1"}]}


# --- hand-worked cases -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ({"a": "ab"}, {"a": "ab"}, 1.0),
        # one leaf edit (b→c) over a gold tree costing 1 (key) + 2 (leaf) = 3
        ({"a": "ac"}, {"a": "ab"}, 1 - 1 / 3),
        # renamed key: relabel a→b costs 1
        ({"b": "ab"}, {"a": "ab"}, 1 - 1 / 3),
        # missing key "a": remove a (1) + "abc" (3) = 4 over 1+3+1+2 = 7
        ({"b": "de"}, {"a": "abc", "b": "de"}, 1 - 4 / 7),
        # reordered rows: relabel juice↔cake (4) and 1↔2 (1), twice = 10, gold costs 18
        ({"menu": [{"nm": "juice", "cnt": "1"}, {"nm": "cake", "cnt": "2"}]}, MENU, 1 - 10 / 18),
        ({}, MENU, 0.0),
        (None, MENU, 0.0),
        ("not a dict", {"a": "ab"}, 0.0),  # a stray string costs more than gold: clamped at 0
    ],
)
def test_ted_accuracy_hand_worked(pred, gold, expected):
    assert ted_accuracy(pred, gold) == pytest.approx(expected)
    assert DONUT.cal_acc(pred, gold) == pytest.approx(expected)
    assert reference_accuracy(pred, gold) == pytest.approx(expected)


def test_empty_gold_scores_empty_prediction_as_correct():
    assert ted_accuracy({}, {}) == 1.0
    assert ted_accuracy({"a": "x"}, {"a": ""}) == 0.0  # gold normalizes to {}


def test_normalize_dict_quirks_match_donut():
    data = {"b": "", "a": ["x ", 1, True, None, 2.5], "cc": {"d": None}, "zz": "  ", "k": [{"y": "1"}, {}]}
    assert donut_normalize(data) == DONUT.normalize_dict(data)
    assert donut_normalize(data) == {"a": ["x", "1", "2.5"], "k": [{"y": ["1"]}], "zz": [""]}
    assert donut_flatten(donut_normalize(MENU)) == DONUT.flatten(DONUT.normalize_dict(MENU))
    assert donut_flatten(donut_normalize(MENU)) == [
        ("menu.nm", "cake"), ("menu.cnt", "2"), ("menu.nm", "juice"), ("menu.cnt", "1")]


def test_field_f1_equals_donut_cal_f1():
    from vlmocr.eval.metrics import summarize

    gold = [{"a": "1", "b": "2", "c": "3"}, {"a": "1"}]
    pred = [{"a": "1", "b": "9"}, {"a": "1"}]
    summary = summarize(zip(pred, gold))
    # hand-worked: tp = 1 + 1, predicted pairs 2 + 1, gold pairs 3 + 1 → 2·2 / (3 + 4)
    assert summary.field_f1 == pytest.approx(4 / 7)
    assert summary.field_f1 == pytest.approx(DONUT.cal_f1(pred, gold))
    assert summary.field_f1_macro == pytest.approx((0.4 + 1.0) / 2)


def test_levenshtein_matches_reference_dp():
    rng = random.Random(3)
    for _ in range(200):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 8)))
        assert levenshtein(a, b) == _edit_distance(a, b)


# --- the fast exact distance equals zss ---------------------------------------------------
WORDS = "alpha beta 12 7 2024-05-01 Widget Apt. x".split()


def _doc(rng: random.Random) -> dict:
    doc = {k: " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 2))) for k in ("route", "dock", "load", "total")}
    doc["products"] = [{"d": rng.choice(WORDS), "c": str(rng.randint(1, 30))} for _ in range(rng.randint(0, 3))]
    return doc


def _perturb(doc: dict, rng: random.Random) -> dict:
    pred = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        keys = list(pred)
        if r < 0.25:
            key = rng.choice(keys)
            if isinstance(pred[key], str):
                pred[key] = pred[key][:-1] + rng.choice("xyz")
        elif r < 0.35:
            del pred[rng.choice(keys)]
        elif r < 0.45:
            pred["extra"] = rng.choice(WORDS)
        elif r < 0.6 and isinstance(pred.get("products"), list) and pred["products"]:
            pred["products"].pop(rng.randrange(len(pred["products"])))
        elif r < 0.7 and isinstance(pred.get("products"), list):
            pred["products"].reverse()
        elif r < 0.85:  # shift values across keys: defeats the bounds, exercises the DP
            scalars = [k for k in keys if isinstance(pred[k], str)]
            values = [pred[k] for k in scalars]
            for k, v in zip(scalars, values[1:] + values[:1]):
                pred[k] = v
        else:
            pred = {k: rng.choice(WORDS) for k in rng.sample(keys, min(2, len(keys)))}
    return pred


def test_fast_ted_equals_zss_on_random_trees():
    rng = random.Random(7)
    ted.TED_STATS.clear()
    for _ in range(120):
        gold = _doc(rng)
        pred = _perturb(gold, rng) if rng.random() < 0.9 else {}
        p, g = donut_normalize(pred), donut_normalize(gold)
        assert tree_edit_distance(p, g) == reference_ted(p, g), (pred, gold)
    # every path was exercised (zss itself only for "<leaf>" labels, tested below)
    assert {"bounds", "dp", "empty"} <= set(ted.TED_STATS)


def test_labels_with_donut_leaf_marker_use_zss_and_agree():
    ted.TED_STATS.clear()
    gold = {"a<leaf>": "x", "b": "<leaf>yz"}
    pred = {"a<leaf>": "y", "b": "yz"}
    assert ted_accuracy(pred, gold) == pytest.approx(DONUT.cal_acc(pred, gold))
    assert ted.TED_STATS["zss"] >= 1


def test_zhang_shasha_equals_zss_on_a_manifest_sized_pair():
    import json

    from tests.unit.conftest import SEED_SUFFIX

    gold = json.loads(SEED_SUFFIX)
    pred = copy.deepcopy(gold)
    keys = [k for k in gold if isinstance(gold[k], str)]
    for k, v in zip(keys, [gold[k] for k in keys[1:] + keys[:1]]):
        pred[k] = v
    pred["products"].pop(2)
    p, g = donut_normalize(pred), donut_normalize(gold)
    assert zhang_shasha(ted._Tree(p), ted._Tree(g)) == reference_ted(p, g)
