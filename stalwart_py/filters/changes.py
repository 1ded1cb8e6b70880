"""Applying a filter's changes to a message (bytes in, bytes out).

Header changes follow the milter semantics Sendmail and Postfix implement, since the milter
client is the filter that produces most of them:

* add (SMFIR_ADDHEADER): the field goes after the last field;
* insert (SMFIR_INSHEADER): before the ``index``-th field of the header (0: the first), or last
  when there are fewer fields;
* change (SMFIR_CHGHEADER): the ``index``-th (from 1) field of that name, compared without
  case; an empty value (None here) deletes it; a missing one is added (Postfix does so).

A value that spans lines (a milter folds with a bare LF, the Sendmail convention) is written
with CRLF line ends; a value is written after ``": "`` unless it starts with white space
(then it is kept as given, the ``SMFIP_HDR_LEADSPC`` convention).
"""

from __future__ import annotations

from stalwart_py.filters.api import AddHeader, ChangeHeader, Changes, HeaderChange, InsertHeader


def split_fields(header: bytes) -> list[bytes]:
    """The fields of a header block, each with its continuation lines and CRLFs."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(raw: bytes) -> bytes:
    return raw.split(b":", 1)[0].strip().lower()


def field_value(raw: bytes) -> bytes:
    """The value after the colon, unfolded lines kept, the final CRLF removed."""
    value = raw.split(b":", 1)[1] if b":" in raw else b""
    return value.removesuffix(b"\r\n").removesuffix(b"\n")


def render_field(name: str, value: str) -> bytes:
    value = value.replace("\r\n", "\n").replace("\n", "\r\n")
    separator = ":" if value[:1] in (" ", "\t") else ": "
    return f"{name}{separator}{value}\r\n".encode("utf-8", "surrogateescape")


def split_message(content: bytes) -> tuple[bytes, bytes]:
    """(header block with its last CRLF, body); a message without a body separator is all
    header."""
    if content.startswith(b"\r\n"):
        return b"", content[2:]
    end = content.find(b"\r\n\r\n")
    if end < 0:
        return content, b""
    return content[: end + 2], content[end + 4 :]


def apply_header_changes(fields: list[bytes], changes: tuple[HeaderChange, ...]) -> list[bytes]:
    fields = list(fields)
    for change in changes:
        match change:
            case AddHeader(name, value):
                fields.append(render_field(name, value))
            case InsertHeader(index, name, value):
                fields.insert(max(0, min(index, len(fields))), render_field(name, value))
            case ChangeHeader(name, value, index):
                wanted = name.lower().encode("utf-8", "surrogateescape")
                positions = [i for i, raw in enumerate(fields) if field_name(raw) == wanted]
                if 1 <= index <= len(positions):
                    position = positions[index - 1]
                    if value is None or value == "":
                        del fields[position]
                    else:
                        fields[position] = render_field(name, value)
                elif value:
                    fields.append(render_field(name, value))
    return fields


def apply_changes(content: bytes, changes: Changes) -> bytes:
    """The message with ``changes`` applied (the envelope changes are the caller's)."""
    if not changes.headers and changes.body is None:
        return content
    header, body = split_message(content)
    if changes.headers:
        header = b"".join(apply_header_changes(split_fields(header), changes.headers))
    if changes.body is not None:
        body = _crlf(changes.body)
    return header + b"\r\n" + body


def _crlf(data: bytes) -> bytes:
    """Bare LFs as CRLF: a filter may give a body with either line end."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
