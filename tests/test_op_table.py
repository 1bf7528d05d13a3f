"""The TrivialAugmentWide op table: one row per op, exactly the ``mappings.ops`` vocabulary, and the
only place in the TrivialAugment code that names an op."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from harness.augment import ops as op_table
from harness.augment.ops import GEOMETRIC_OPS, MAGNITUDE_FREE_OPS, SIGNED_OPS, TA_OPS, TA_TABLE
from mappings.ops import TRIVIAL_AUGMENT_WIDE

AUGMENT = Path(__file__).resolve().parents[1] / "harness" / "augment"


def test_rows_are_exactly_the_vocabulary_in_its_order():
    assert [row.name for row in TA_TABLE] == list(TRIVIAL_AUGMENT_WIDE.names)
    assert TA_OPS == TRIVIAL_AUGMENT_WIDE.names
    assert [row.op_id for row in TA_TABLE] == list(range(len(TRIVIAL_AUGMENT_WIDE)))
    assert {row.name for row in TA_TABLE if row.signed} == set(TRIVIAL_AUGMENT_WIDE.signed) == SIGNED_OPS
    assert {row.name for row in TA_TABLE if row.bins is None} == set(TRIVIAL_AUGMENT_WIDE.magnitude_free)
    assert MAGNITUDE_FREE_OPS == TRIVIAL_AUGMENT_WIDE.magnitude_free
    # the source lists the rows in the same order too (one can read the table top to bottom)
    assert [row.name for row in op_table._ROWS] == list(TRIVIAL_AUGMENT_WIDE.names)


def test_every_row_is_complete():
    for row in TA_TABLE:
        assert callable(row.image), row.name
        assert (row.batch is None) != (row.affine is None), row.name  # one batched form
        assert (row.severity is None) == (row.bins is None), row.name  # magnitude-free: severity 0
        if row.invalid is not None:
            assert row.invalid_message and row.name in row.invalid_message, row.name
    assert GEOMETRIC_OPS == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
    geo = sorted(row.op_id for row in TA_TABLE if row.geometric)
    assert geo == list(range(geo[0], geo[-1] + 1)), "the batched path groups the geometric ids as one range"
    assert [row.name for row in TA_TABLE if row.quarter_turns is not None] == ["Rotate"]


def test_affine_rows_set_only_known_fields():
    m = torch.linspace(-40.0, 40.0, 9, dtype=torch.float64)
    for row in TA_TABLE:
        if row.geometric:
            fields = row.affine(m, 24, 32)
            assert fields and set(fields) <= set(op_table.AFFINE_FIELDS), row.name
            assert all(v.shape == m.shape and v.dtype == torch.float64 for v in fields.values()), row.name


def _named_ops_in_code(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every string literal in ``path`` that is an op name, docstrings excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        and any(name in node.value for name in TA_OPS)
    ]


TA_MODULES = ["trivial.py", "batch_trivial.py", "batched_ops.py", "ta_base.py", "space.py"]


@pytest.mark.parametrize("module", TA_MODULES)
def test_no_op_is_named_outside_the_table(module):
    assert _named_ops_in_code(AUGMENT / module) == []


def test_kernels_know_no_op_ids():
    """batched_ops holds per-sample kernels only: it imports neither the table nor the op space."""
    tree = ast.parse((AUGMENT / "batched_ops.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and ("harness" in m or "mappings" in m) for m in imported), imported
