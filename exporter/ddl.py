"""What a source table's DDL did since a target last committed it, from two signatures of its
columns: the one recorded with that commit (etl.watermarks.source_columns) and the one read at
the start of this run. Columns are matched by attnum, PostgreSQL's own identity of a column,
so a rename is a rename and not a drop and an add.

Some DDL changes values without moving any row's cursor, and then the run reads the whole
table again (a resync: every row a new version in the change log, the current state replaced):
- a column added with a default or generated: PostgreSQL fills every existing row;
- a rewrite of the table (pg_class.relfilenode changed): an ALTER TYPE that converts values,
  a USING expression, a volatile default, a stored generated column; also VACUUM FULL and
  CLUSTER, which change no value but cannot be told apart from those;
- a dropped column: the lake keeps it (older versions hold its values), and the current state
  is rewritten with it null, as the source no longer has it.
A rename, a column added without a default and a type change PostgreSQL makes without
rewriting (varchar(10) to varchar(20), varchar to text) change no value and cost nothing. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One source column as the signature records it."""

    attnum: int | None  # None in signatures recorded before columns had it
    name: str
    type: str
    typmod: int
    filled: bool = False  # has a default or is generated: existing rows got values when added


@dataclass(frozen=True)
class Signature:
    """A source table's columns, in order, and its relation file (None: not recorded)."""

    columns: tuple[Column, ...]
    filenode: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "filenode": self.filenode,
                "columns": [[c.attnum, c.name, c.type, c.typmod, c.filled] for c in self.columns],
            }
        )

    @classmethod
    def parse(cls, text: str | None) -> Signature | None:
        """A recorded signature, in either form it was ever recorded in; None for none or for
        one that cannot be read (then the table is compared as if first seen)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            if isinstance(data, list):  # [[name, type, typmod], ...]: names only
                return cls(tuple(Column(None, str(n), str(t), int(m)) for n, t, m in data))
            return cls(
                tuple(
                    Column(int(a), str(n), str(t), int(m), bool(f))
                    for a, n, t, m, f in data["columns"]
                ),
                int(data["filenode"]) if data.get("filenode") is not None else None,
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class SourceChange:
    """What the lake must do for the DDL between two signatures."""

    renames: dict[str, str] = field(default_factory=dict)  # old name -> new name
    resync: str | None = None  # why every row is read again; None: the cursor suffices


def compare(recorded: Signature | None, now: Signature) -> SourceChange:
    """The DDL between the recorded signature and today's (no recorded one: nothing to do)."""
    change = SourceChange()
    if recorded is None:
        return change
    by_attnum = all(c.attnum is not None for c in recorded.columns)
    before = {(c.attnum if by_attnum else c.name): c for c in recorded.columns}
    reasons = []
    rewritten = (
        recorded.filenode is not None
        and now.filenode is not None
        and recorded.filenode != now.filenode
    )
    seen = set()
    for column in now.columns:
        key = column.attnum if by_attnum else column.name
        old = before.get(key)
        if old is None:
            if column.filled:
                reasons.append(f"column {column.name} was added with a default or generated")
            continue
        seen.add(key)
        if old.name != column.name:
            change.renames[old.name] = column.name
        if (old.type, old.typmod) != (column.type, column.typmod) and (
            rewritten or recorded.filenode is None
        ):
            reasons.append(f"column {column.name} changed type")
    for key, old in before.items():
        if key not in seen:
            reasons.append(f"column {old.name} was dropped")
    if rewritten and not reasons:
        reasons.append("the table was rewritten (ALTER TABLE, VACUUM FULL or CLUSTER)")
    if reasons:
        change.resync = "; ".join(reasons)
    return change
