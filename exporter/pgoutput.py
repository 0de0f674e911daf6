"""PostgreSQL's built-in logical decoding output, `pgoutput` protocol version 1, decoded: the
messages a capture of row versions needs (begin, commit, relation, type, origin, insert,
update, delete, truncate), each from the `data` bytes of one row of
`pg_logical_slot_peek_binary_changes(slot, upto_lsn, upto_nchanges, 'proto_version', '1',
'publication_names', ...)`. Pure: bytes in, messages out; a message that is not what the
protocol says is one ExportError line naming what is wrong, never a half-read value.

The layouts are PostgreSQL's "Logical Replication Message Formats": integers big-endian,
strings NUL-terminated, times microseconds since 2000-01-01 UTC, LSNs 64-bit positions.
A tuple's values are text (PostgreSQL's output function), None for null, or UNCHANGED for a
TOASTed value the update did not change (the reader keeps the value it has)."""

from __future__ import annotations

import datetime as dt
import enum
import struct
from dataclasses import dataclass
from typing import Final, Literal

from exporter.errors import ExportError

POSTGRES_EPOCH: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class _Unchanged(enum.Enum):
    """A TOASTed value an update left as it was: pgoutput does not send it."""

    UNCHANGED = "u"


UNCHANGED: Final = _Unchanged.UNCHANGED
Value = str | bytes | None | _Unchanged
Row = tuple[Value, ...]


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL prints it (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_value(text: str) -> int:
    """An LSN from PostgreSQL's text form."""
    high, sep, low = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ExportError(f"{text!r} is not an LSN (like 16/B374D848)") from None


def timestamp(microseconds: int) -> dt.datetime:
    """A pgoutput time (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return POSTGRES_EPOCH + dt.timedelta(microseconds=microseconds)


@dataclass(frozen=True)
class Begin:
    final_lsn: int  # where the transaction's commit record starts
    commit_time: dt.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int  # where the commit record starts
    end_lsn: int  # just past it: a slot advanced here delivers the transaction no more
    commit_time: dt.datetime


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    key: bool  # part of the replica identity


@dataclass(frozen=True)
class Relation:
    """A table's columns as they are from here on: sent before the table's first change in a
    peek and again after every DDL that changes them."""

    relid: int
    namespace: str
    name: str
    replica_identity: Literal["d", "n", "f", "i"]
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Type:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relid: int
    new: Row


@dataclass(frozen=True)
class Update:
    relid: int
    new: Row
    old: Row | None = None  # the key ('K') or the whole old row ('O'), when sent
    old_kind: Literal["K", "O"] | None = None


@dataclass(frozen=True)
class Delete:
    relid: int
    old: Row
    old_kind: Literal["K", "O"]


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ExportError(
                f"pgoutput message {self.data[:1]!r} ends after {len(self.data)} bytes, "
                f"inside a field at byte {self.at}: the message is cut short"
            )
        part = self.data[self.at : self.at + size]
        self.at += size
        return part

    def int8(self) -> int:
        return int(self.take(1)[0])

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise ExportError(
                f"pgoutput message {self.data[:1]!r} has a string with no end at byte {self.at}"
            )
        text = self.data[self.at : end].decode("utf-8", errors="strict")
        self.at = end + 1
        return text

    def tuple(self) -> Row:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.take(1)
            if kind == b"n":
                values.append(None)
            elif kind == b"u":
                values.append(UNCHANGED)
            elif kind in (b"t", b"b"):
                raw = self.take(self.int32())
                values.append(raw.decode("utf-8") if kind == b"t" else raw)
            else:
                raise ExportError(f"pgoutput tuple has a column of kind {kind!r}, not n, u, t or b")
        return tuple(values)

    def done(self) -> None:
        if self.at != len(self.data):
            raise ExportError(
                f"pgoutput message {self.data[:1]!r} has {len(self.data) - self.at} byte(s) "
                "past its end"
            )


def decode(data: bytes) -> Message:
    """One pgoutput v1 message."""
    if not data:
        raise ExportError("empty pgoutput message")
    r = _Reader(bytes(data))
    tag = r.take(1)
    message: Message
    try:
        if tag == b"B":
            message = Begin(r.uint64(), timestamp(r.int64()), r.uint32())
        elif tag == b"C":
            message = Commit(r.int8(), r.uint64(), r.uint64(), timestamp(r.int64()))
        elif tag == b"O":
            message = Origin(r.uint64(), r.string())
        elif tag == b"R":
            relid, namespace, name = r.uint32(), r.string(), r.string()
            identity = chr(r.int8())
            if identity not in "dnfi":
                raise ExportError(f"pgoutput relation {name} has replica identity {identity!r}")
            columns = []
            for _ in range(r.int16()):
                flags = r.int8()
                columns.append(Column(r.string(), r.uint32(), r.int32(), bool(flags & 1)))
            message = Relation(relid, namespace or "pg_catalog", name, identity, tuple(columns))  # type: ignore[arg-type]
        elif tag == b"Y":
            message = Type(r.uint32(), r.string(), r.string())
        elif tag == b"I":
            relid = r.uint32()
            if r.take(1) != b"N":
                raise ExportError("pgoutput insert has no new tuple ('N')")
            message = Insert(relid, r.tuple())
        elif tag == b"U":
            relid = r.uint32()
            kind = r.take(1)
            old: Row | None = None
            old_kind: Literal["K", "O"] | None = None
            if kind in (b"K", b"O"):
                old, old_kind = r.tuple(), "K" if kind == b"K" else "O"
                kind = r.take(1)
            if kind != b"N":
                raise ExportError(f"pgoutput update has {kind!r} where its new tuple ('N') is")
            message = Update(relid, r.tuple(), old, old_kind)
        elif tag == b"D":
            relid = r.uint32()
            kind = r.take(1)
            if kind not in (b"K", b"O"):
                raise ExportError(f"pgoutput delete has {kind!r} where its old tuple is")
            message = Delete(relid, r.tuple(), "K" if kind == b"K" else "O")
        elif tag == b"T":
            count, options = r.int32(), r.int8()
            message = Truncate(
                tuple(r.uint32() for _ in range(count)), bool(options & 1), bool(options & 2)
            )
        else:
            raise ExportError(
                f"pgoutput message {tag!r} is none this capture reads (B, C, O, R, Y, I, U, D, T): "
                "was the slot read with proto_version 1 and without streaming?"
            )
    except UnicodeDecodeError as exc:
        raise ExportError(f"pgoutput message {tag!r} holds text that is not UTF-8: {exc}") from exc
    r.done()
    return message
