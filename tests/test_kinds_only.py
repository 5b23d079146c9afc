"""Only :mod:`sparsegraph.graph.kinds` branches on a node's kind (issue 10).

Every other module asks the kind (``KINDS[node.kind].has_weight``, a walk's rule) or the
Network (``net.inputs``, ``net.uses(name)``), so adding a kind of node is one entry in the
kinds package. The check reads the package's source as syntax trees and lists every place
outside ``graph/kinds/`` that compares a node's kind with a kind name, dispatches on it through
a table other than ``KINDS``, or tests ``node.layer`` (the index only ``layer`` nodes carry) as a
stand-in for the kind.

A node's kind is told apart from the other ``kind`` attributes of the package by its values:
the node kinds are the names in ``KINDS`` (``input``, ``layer``, ``add``, ...), which no
:class:`~sparsegraph.graph.network.Layer` kind (``linear``, ``conv``, ``embedding``), scheme
kind (``quota``, ``pruner``) or dtype kind shares; building a node with a kind (the tracer) is
not a test of one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sparsegraph.graph.kinds import KINDS
from sparsegraph.graph.network import LAYER_KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "sparsegraph"
ALLOWED = PACKAGE / "graph" / "kinds"
NODE_KINDS = frozenset(KINDS)
#: Variable names that hold a Node in this package (for the table-dispatch and ``.layer`` rules).
NODE_NAMES = frozenset({"node", "nd", "n", "src", "dst", "parent", "child", "prev", "nxt", "out"})


def _names_kind(expr: ast.AST) -> bool:
    """``x.kind``, ``kind``/``kinds``/``node_kind``, or ``x["kind"]``."""
    if isinstance(expr, ast.Attribute):
        return expr.attr == "kind"
    if isinstance(expr, ast.Name):
        return "kind" in expr.id.lower() and expr.id != "KINDS"
    if isinstance(expr, ast.Subscript):
        sl = expr.slice
        return isinstance(sl, ast.Constant) and sl.value == "kind"
    return False


def _kind_literals(expr: ast.AST) -> set[str]:
    """The node-kind names among the string constants of ``expr`` (a constant or a literal
    tuple/list/set/frozenset(...) of them)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value} & NODE_KINDS
    if isinstance(expr, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_kind_literals(e) for e in expr.elts)) if expr.elts else set()
    if isinstance(expr, ast.Call) and expr.args and not expr.keywords:
        return _kind_literals(expr.args[0])
    return set()


def _is_node(expr: ast.AST) -> bool:
    """A name that holds a node here, or ``nodes[...]`` / ``net.nodes[...]``."""
    if isinstance(expr, ast.Name):
        return expr.id in NODE_NAMES
    if isinstance(expr, ast.Subscript):
        v = expr.value
        return (isinstance(v, ast.Name) and v.id == "nodes") or (
            isinstance(v, ast.Attribute) and v.attr == "nodes")
    return False


def _node_kind(expr: ast.AST) -> bool:
    return isinstance(expr, ast.Attribute) and expr.attr == "kind" and _is_node(expr.value)


def offenders(source: str, filename: str = "<string>") -> list[str]:
    """``"file:line: code"`` for every test of a node's kind in ``source``."""
    tree = ast.parse(source, filename)
    lines = source.splitlines()
    hits: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_names_kind(o) for o in operands) and any(_kind_literals(o) for o in operands):
                hits.append(node.lineno)
            elif any(_node_kind(o) for o in operands) and sum(_names_kind(o) for o in operands) > 1:
                hits.append(node.lineno)  # node.kind == other.kind
            elif any(isinstance(o, ast.Attribute) and o.attr == "layer" and _is_node(o.value)
                     for o in operands) and any(
                         isinstance(o, (ast.Constant, ast.UnaryOp)) for o in operands):
                hits.append(node.lineno)  # node.layer >= 0: "is it a layer node?"
        elif isinstance(node, ast.Subscript) and _node_kind(node.slice):
            table = node.value
            if not (isinstance(table, ast.Name) and table.id == "KINDS"):
                hits.append(node.lineno)  # TABLE[node.kind]: a second table of kinds
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get" and node.args and _node_kind(node.args[0])):
            table = node.func.value
            if not (isinstance(table, ast.Name) and table.id == "KINDS"):
                hits.append(node.lineno)
        elif isinstance(node, ast.Match) and _names_kind(node.subject):
            hits.append(node.lineno)
    return [f"{filename}:{n}: {lines[n - 1].strip()}" for n in sorted(set(hits))]


def test_node_kinds_and_layer_kinds_do_not_share_names():
    # The check tells node kinds from layer kinds by name; a shared name would blind it.
    assert not NODE_KINDS & set(LAYER_KINDS)
    assert {"quota", "pruner"}.isdisjoint(NODE_KINDS)


@pytest.mark.parametrize("code", [
    'if node.kind == "layer":\n    pass',
    'x = 1 if nd.kind in ("add", "cat") else 0',
    'ok = "input" != net.nodes[i].kind',
    'if kind == "softmax":\n    pass',
    'f = {"add": 1, "cat": 2}[node.kind]',
    'f = RULES.get(node.kind)',
    'if node.layer >= 0:\n    pass',
    'same = src.kind == dst.kind',
    'match node.kind:\n    case "add":\n        pass',
])
def test_the_check_finds_a_branch_on_a_node_kind(code):
    assert offenders(code), code


@pytest.mark.parametrize("code", [
    'if layer.kind == "conv":\n    pass',                 # a parameter's layout
    'if arr.dtype.kind not in "biuf":\n    pass',         # a dtype
    'if s.kind == "pruner":\n    pass',                   # a scheme record
    'rule = KINDS[node.kind]',                             # asking the kind
    'if KINDS[node.kind].has_weight:\n    pass',
    'n = Node(0, "input", (), (3,))',                      # building a node with a kind
    'label = f"{node.kind}{node.id}"',                     # naming it
])
def test_the_check_leaves_other_kinds_alone(code):
    assert not offenders(code), code


def test_only_the_kinds_package_branches_on_a_node_kind():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ALLOWED in path.parents:
            continue
        rel = path.relative_to(PACKAGE.parent).as_posix()
        found += offenders(path.read_text(encoding="utf-8"), rel)
    assert not found, (
        "code outside sparsegraph/graph/kinds/ branches on a node's kind; ask the kind "
        "(KINDS[node.kind].has_weight, a walk's rule) or the Network (net.inputs, "
        "net.uses(name)) instead:\n  " + "\n  ".join(found)
    )
