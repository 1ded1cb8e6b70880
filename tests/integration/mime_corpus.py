"""Messages for the IMAP FETCH tests, built from known pieces so that every size and line
count the server reports can be checked against the bytes that make it up."""

from __future__ import annotations

# -- 1. nested multipart: mixed(alternative(plain, html), pdf attachment, message/rfc822) ----

PLAIN_BODY = b"Hall=C3=B6 Welt,\r\nsee the attachment.\r\n-- \r\nAnn"
HTML_BODY = b"<p>Hall&ouml; Welt</p>"
PDF_BODY = b"JVBERi0xLjQKJcfs\r\nj6IKMSAwIG9iago="
INNER_BODY = b"Inner text.\r\nSecond line."
INNER = (
    b"From: Carol <carol@example.net>\r\n"
    b"Subject: Forwarded\r\n"
    b"Date: Tue, 2 Jan 2024 09:00:00 +0100\r\n"
    b"Message-ID: <inner@example.net>\r\n"
    b"\r\n" + INNER_BODY
)
ALTERNATIVE = (
    b"--alt\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n" + PLAIN_BODY + b"\r\n"
    b"--alt\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n" + HTML_BODY + b"\r\n"
    b"--alt--"
)
NESTED = (
    b"From: Ann Example <ann@example.org>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: Quarterly report\r\n"
    b"Date: Wed, 3 Jan 2024 10:30:00 +0000\r\n"
    b"Message-ID: <nested@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="mix"\r\n'
    b"\r\n"
    b"This is a multi-part message.\r\n"
    b"--mix\r\n"
    b"Content-Type: multipart/alternative; boundary=alt\r\n"
    b"\r\n" + ALTERNATIVE + b"\r\n"
    b"--mix\r\n"
    b"Content-Type: application/pdf; name*=utf-8''R%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-ID: <pdf@example.org>\r\n"
    b"Content-Description: the report\r\n"
    b"\r\n" + PDF_BODY + b"\r\n"
    b"--mix\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n" + INNER + b"\r\n"
    b"--mix--\r\n"
    b"epilogue\r\n"
)

# -- 2. non-ASCII headers: encoded words, raw UTF-8, groups, every address field -------------

HEADERS = (
    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jorg@example.de>\r\n"
    "Sender: list-bounces@example.de\r\n"
    'Reply-To: "Müller, Jörg" <reply@example.de>\r\n'
    "To: Team: a@example.test, b@example.test;, alice@example.test\r\n"
    "Cc: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.ru>\r\n"
    "Bcc: hidden@example.test\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?= \u2013 und mehr\r\n"
    "Date: Thu, 4 Jan 2024 12:00:00 +0100\r\n"
    "In-Reply-To: <earlier@example.de>\r\n"
    "Message-ID: <utf8@example.de>\r\n"
    "\r\n"
    "Körper.\r\n"
).encode()

# -- 3. broken MIME ---------------------------------------------------------------------------

UNCLOSED = (
    b"From: x@example.org\r\n"
    b"Subject: unclosed\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"first\r\n"
    b"--b1\r\n"
    b"\r\n"
    b"second, never closed\r\n"
)
NO_BOUNDARY = (
    b"From: x@example.org\r\n"
    b"Subject: no boundary\r\n"
    b"Content-Type: multipart/mixed\r\n"
    b"\r\n"
    b"just text\r\n"
)
GARBAGE_TYPE = (
    b"From: <broken@@example.org\r\n"
    b"Subject: garbage type\r\n"
    b"Content-Type: ;;; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"body\r\n"
)

CORPUS = (NESTED, HEADERS, UNCLOSED, NO_BOUNDARY, GARBAGE_TYPE)
