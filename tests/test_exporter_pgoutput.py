"""exporter/pgoutput.py: every pgoutput v1 message a capture reads, from bytes laid out as the
protocol says and from a real slot of the test server (wal_level = logical); a malformed
message is one clear error."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from exporter import pgoutput as p
from exporter.errors import ExportError
from tests.pg_harness import Server

WHEN = dt.datetime(2026, 12, 7, 22, 54, 23, 123456, tzinfo=dt.UTC)
MICROS = (WHEN - p.POSTGRES_EPOCH) // dt.timedelta(microseconds=1)


def s(text: str) -> bytes:
    return text.encode() + b"\x00"


def row(*values: str | None) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        out += b"n" if v is None else b"t" + struct.pack(">i", len(v.encode())) + v.encode()
    return out


def test_begin_and_commit() -> None:
    begin = p.decode(b"B" + struct.pack(">QqI", 0x16_B374D848, MICROS, 4242))
    assert begin == p.Begin(0x16_B374D848, WHEN, 4242)
    commit = p.decode(b"C" + struct.pack(">bQQq", 0, 0x16_B374D848, 0x16_B374D880, MICROS))
    assert commit == p.Commit(0, 0x16_B374D848, 0x16_B374D880, WHEN)
    assert isinstance(commit, p.Commit)
    assert p.lsn_text(commit.end_lsn) == "16/B374D880"
    assert p.lsn_value("16/B374D880") == commit.end_lsn


def test_relation_type_and_origin() -> None:
    relation = p.decode(
        b"R"
        + struct.pack(">I", 16384)
        + s("app")
        + s("users")
        + b"d"
        + struct.pack(">h", 2)
        + b"\x01" + s("user_id") + struct.pack(">Ii", 20, -1)
        + b"\x00" + s("bio") + struct.pack(">Ii", 25, -1)
    )  # fmt: skip
    assert relation == p.Relation(
        16384,
        "app",
        "users",
        "d",
        (p.Column("user_id", 20, -1, True), p.Column("bio", 25, -1, False)),
    )
    assert isinstance(relation, p.Relation) and relation.qualified == "app.users"
    assert p.decode(b"Y" + struct.pack(">I", 70000) + s("app") + s("status")) == p.Type(
        70000, "app", "status"
    )
    assert p.decode(b"O" + struct.pack(">Q", 99) + s("other")) == p.Origin(99, "other")


def test_row_changes() -> None:
    assert p.decode(b"I" + struct.pack(">I", 1) + b"N" + row("481", None)) == p.Insert(
        1, ("481", None)
    )
    # an update keeping its key sends the new row only; one changing it, the old key too
    assert p.decode(b"U" + struct.pack(">I", 1) + b"N" + row("481", "x")) == p.Update(
        1, ("481", "x")
    )
    moved = p.decode(b"U" + struct.pack(">I", 1) + b"K" + row("481", None) + b"N" + row("9", "x"))
    assert moved == p.Update(1, ("9", "x"), ("481", None), "K")
    unchanged = p.decode(
        b"U" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 2) + b"t\x00\x00\x00\x011u"
    )
    assert isinstance(unchanged, p.Update) and unchanged.new == ("1", p.UNCHANGED)
    assert p.decode(b"D" + struct.pack(">I", 1) + b"K" + row("481", None)) == p.Delete(
        1, ("481", None), "K"
    )
    assert p.decode(b"T" + struct.pack(">ibII", 2, 3, 1, 2)) == p.Truncate((1, 2), True, True)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "empty pgoutput message"),
        (b"B\x00\x00", "cut short"),
        (b"C" + bytes(25) + b"!", "past its end"),
        (b"Z", "none this capture reads"),
        (b"I" + struct.pack(">I", 1) + b"X", "no new tuple"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"q", "kind b'q'"),
        (b"Y" + struct.pack(">I", 1) + b"app", "no end"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">hci", 1, b"t", 1) + b"\xff", "UTF-8"),
    ],
    ids=["empty", "short", "trailing", "unknown", "no-new", "kind", "string", "utf8"],
)
def test_a_malformed_message_is_one_clear_error(data: bytes, said: str) -> None:
    with pytest.raises(ExportError, match=said) as caught:
        p.decode(data)
    assert "\n" not in str(caught.value)


def test_an_lsn_that_is_not_one() -> None:
    with pytest.raises(ExportError, match="not an LSN"):
        p.lsn_value("16B374D848")


def test_a_real_slot_decodes(pg: Server, app_db: str) -> None:
    """What the test server's own pgoutput sends for inserts, a key update, an update, a
    delete, a column added mid-stream and a truncate, read by polling SQL."""
    slot = f"probe_{app_db}"
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("create table public.probe (id bigint primary key, label text)")
        conn.execute("create publication probe_pub for table public.probe")
        conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            with conn.transaction():
                conn.execute("insert into public.probe values (1, 'a'), (2, 'b')")
            conn.execute("update public.probe set id = 3 where id = 1")
            conn.execute("update public.probe set label = 'c' where id = 2")
            conn.execute("delete from public.probe where id = 3")
            conn.execute("alter table public.probe add column note text")
            conn.execute("insert into public.probe values (4, 'd', 'n')")
            conn.execute("truncate public.probe")
            rows = conn.execute(
                "select lsn::text, data from pg_logical_slot_peek_binary_changes(%s, null, null,"
                " 'proto_version', '1', 'publication_names', 'probe_pub')",
                (slot,),
            ).fetchall()
        finally:
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
            conn.execute("drop publication probe_pub")
            conn.execute("drop table public.probe")
    messages = [p.decode(bytes(data)) for _, data in rows]
    changes = [m for m in messages if not isinstance(m, p.Begin | p.Commit | p.Relation)]
    first = changes[0]
    assert isinstance(first, p.Insert)
    relid = first.relid
    assert changes == [
        p.Insert(relid, ("1", "a")),
        p.Insert(relid, ("2", "b")),
        p.Update(relid, ("3", "a"), ("1", None), "K"),  # a key update: the old key too
        p.Update(relid, ("2", "c")),
        p.Delete(relid, ("3", None), "K"),
        p.Insert(relid, ("4", "d", "n")),  # the column added mid-stream
        p.Truncate((relid,), False, False),
    ]
    relations = [m for m in messages if isinstance(m, p.Relation)]
    assert [c.name for c in relations[0].columns] == ["id", "label"]
    assert [c.name for c in relations[-1].columns] == ["id", "label", "note"]  # after the DDL
    assert relations[0].columns[0].key and not relations[0].columns[1].key
    commits = [m for m in messages if isinstance(m, p.Commit)]
    assert len(commits) == 6  # one a transaction, the DDL's none
    # the commit row's LSN is its end: where the slot would be advanced to
    commit_rows = [lsn for lsn, data in rows if bytes(data)[:1] == b"C"]
    assert [p.lsn_value(x) for x in commit_rows] == [c.end_lsn for c in commits]
    assert all(c.commit_time.tzinfo is not None for c in commits)
