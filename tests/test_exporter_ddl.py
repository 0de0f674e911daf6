"""exporter/ddl.py: what a source table's DDL since the last commit asks of the lake, from two
signatures alone (the runs that act on it are in test_lake_source_changes.py)."""

from __future__ import annotations

import pytest

from exporter.ddl import Column, Signature, compare

BEFORE = Signature(
    (
        Column(1, "user_id", "int8", -1),
        Column(2, "bio", "text", -1),
        Column(3, "score", "numeric", 262150),  # numeric(4,2)
    ),
    filenode=16400,
)


def after(*columns: Column, filenode: int = 16400) -> Signature:
    return Signature(columns, filenode)


def test_nothing_recorded_asks_nothing() -> None:
    change = compare(None, BEFORE)
    assert change.renames == {} and change.resync is None


def test_a_signature_survives_its_json() -> None:
    assert Signature.parse(BEFORE.to_json()) == BEFORE
    assert Signature.parse("not json") is None
    assert Signature.parse(None) is None


def test_a_rename_is_matched_by_attnum_and_costs_nothing() -> None:
    change = compare(
        BEFORE, after(BEFORE.columns[0], Column(2, "about", "text", -1), BEFORE.columns[2])
    )
    assert change.renames == {"bio": "about"} and change.resync is None


def test_a_column_added_without_default_costs_nothing() -> None:
    change = compare(BEFORE, after(*BEFORE.columns, Column(4, "note", "text", -1)))
    assert change.resync is None


def test_a_column_filled_by_the_database_resyncs() -> None:
    change = compare(BEFORE, after(*BEFORE.columns, Column(4, "note", "text", -1, filled=True)))
    assert change.resync == "column note was added with a default or generated"


@pytest.mark.parametrize(
    ("filenode", "resync"),
    [(16400, None), (16999, "column score changed type")],
    ids=["in-place", "rewritten"],
)
def test_a_type_change_resyncs_when_the_table_was_rewritten(
    filenode: int, resync: str | None
) -> None:
    changed = Column(3, "score", "numeric", 327686)  # numeric(5,2): in place, or with USING
    change = compare(BEFORE, after(*BEFORE.columns[:2], changed, filenode=filenode))
    assert change.resync == resync


def test_a_rewrite_alone_resyncs() -> None:
    change = compare(BEFORE, after(*BEFORE.columns, filenode=17000))
    assert change.resync is not None and "rewritten" in change.resync


def test_a_drop_resyncs_and_a_reused_attnum_is_not_a_rename() -> None:
    change = compare(BEFORE, after(*BEFORE.columns[:2]))
    assert change.resync == "column score was dropped"
    # a column added after a drop has an attnum of its own: a drop and an add, not a rename
    change = compare(BEFORE, after(*BEFORE.columns[:2], Column(4, "score", "text", -1)))
    assert change.renames == {} and change.resync == "column score was dropped"


def test_an_old_signature_is_matched_by_name() -> None:
    legacy = '[["user_id", "int8", -1], ["bio", "text", -1]]'
    recorded = Signature.parse(legacy)
    assert recorded is not None and recorded.filenode is None
    same = after(Column(1, "user_id", "int8", -1), Column(2, "bio", "text", -1))
    assert compare(recorded, same).resync is None
    retyped = after(Column(1, "user_id", "int8", -1), Column(2, "bio", "varchar", 104))
    assert compare(recorded, retyped).resync == "column bio changed type"
