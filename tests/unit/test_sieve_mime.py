"""Sieve "mime", "foreverypart" and "extracttext" (RFC 5703): the parts a loop walks and in
which order, :mime tests on the current part, :anychild, the MIME options, break :name,
extracttext with :first and modifiers, and what is refused at upload (with line and column).
Several cases are Pigeonhole's own tests (tests/extensions/mime), which our answers match."""

from __future__ import annotations

import base64

import pytest

from stalwart_py.sieve import Environment, Interpreter, MessageView, SieveSyntaxError, parse_script
from stalwart_py.sieve.actions import FileInto, Limits, SieveRuntimeError

REQUIRE = (
    'require ["mime", "foreverypart", "extracttext", "variables", "fileinto", "relational",'
    ' "include", "comparator-i;ascii-numeric"];\n'
)

NESTED = (
    b"From: Hendrik <hendrik@example.com>\r\n"
    b"To: Harrie <harrie@example.com>\r\n"
    b"Subject: Harrie is een prutser\r\n"
    b"Content-Type: multipart/mixed; boundary=AA\r\n"
    b"X-Test: AA\r\n"
    b"\r\n"
    b"This is a multi-part message in MIME format.\r\n"
    b"--AA\r\n"
    b"Content-Type: multipart/mixed; boundary=BB\r\n"
    b"X-Test: BB\r\n"
    b"\r\n"
    b"--BB\r\n"
    b'Content-Type: text/plain; charset="us-ascii"\r\n'
    b"X-Test: CC\r\n"
    b"\r\n"
    b"This is the first message part containing plain text.\r\n"
    b"--BB\r\n"
    b'Content-Type: text/plain; charset="us-ascii"\r\n'
    b"X-Test: DD\r\n"
    b"\r\n"
    b"This is another plain text message part.\r\n"
    b"--BB--\r\n"
    b"--AA\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"X-Test: EE\r\n"
    b"\r\n"
    + base64.encodebytes(b"<html><body>This is a piece of <b>HTML</b> text.</body></html>")
    + b"--AA\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"X-Test: FF\r\n"
    b"\r\n"
    b"From: Inner <inner@example.com>\r\n"
    b"Subject: forwarded\r\n"
    b"X-Test: GG\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--AA\r\n"
    b"Content-Type: application/x-stuff;\r\n"
    b"\ttitle*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
    b"\ttitle*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
    b'\ttitle*2="isn\'t it!"\r\n'
    b'Content-Disposition: attachment; filename="frop.exe"; title="Frop!"\r\n'
    b"X-Test: HH\r\n"
    b"\r\n"
    b"MZ\r\n"
    b"--AA--\r\n"
)


def run(script: str, message: bytes = NESTED, *, limits=None, includes=None):
    compiled = parse_script(REQUIRE + script)
    environment = Environment(MessageView(message), "a@example.com", "b@example.com")
    included = {name: parse_script(REQUIRE + text) for name, text in (includes or {}).items()}
    return Interpreter(compiled, environment, limits=limits, includes=included).run()


def filed(script: str, message: bytes = NESTED, **kwargs) -> list[str]:
    outcome = run(script, message, **kwargs)
    return [a.mailbox for a in outcome.actions if isinstance(a, FileInto)]


def test_foreverypart_walks_every_part_depth_first_the_message_first():
    assert filed('foreverypart { if header :mime :matches "X-Test" "*" { fileinto "${1}"; } }') == [
        "AA",
        "BB",
        "CC",
        "DD",
        "EE",
        "FF",
        "GG",
        "HH",
    ]


def test_nested_loops_walk_the_parts_below_the_current_one():
    script = (
        'foreverypart :name "outer" {\n'
        '  if header :mime "X-Test" "BB" {\n'
        '    foreverypart { if header :mime :matches "X-Test" "*" { fileinto "in-${1}"; } }\n'
        "  }\n"
        "}\n"
    )
    assert filed(script) == ["in-CC", "in-DD"]


def test_break_leaves_the_innermost_loop_or_the_named_one():
    innermost = (
        'foreverypart { if header :mime "X-Test" "BB" {'
        ' foreverypart { fileinto "x"; break; } } if header :mime "X-Test" "DD" { break; }'
        ' if header :mime :matches "X-Test" "*" { fileinto "${1}"; } }'
    )
    assert filed(innermost) == ["AA", "x", "BB", "CC"]
    named = (
        'foreverypart :name "outer" { if header :mime "X-Test" "BB" {'
        ' foreverypart :name "inner" { fileinto "x"; break :name "outer"; } }'
        ' fileinto "after"; }'
    )
    assert filed(named) == ["after", "x"]


def test_header_mime_outside_a_loop_is_the_message_header_and_anychild_every_part():
    assert filed('if header :mime "X-Test" "AA" { fileinto "top"; }') == ["top"]
    assert filed('if header :mime "X-Test" "CC" { fileinto "no"; }') == []
    assert filed('if header :mime :anychild "X-Test" "GG" { fileinto "any"; }') == ["any"]
    assert filed('if exists :mime :anychild "Content-Disposition" { fileinto "att"; }') == ["att"]
    assert filed('if exists :mime "Content-Disposition" { fileinto "no"; }') == []
    script = 'if address :mime :anychild :domain "from" "example.com" { fileinto "dom"; }'
    assert filed(script) == ["dom"]


def test_mime_options_on_content_type_and_disposition():
    cases = {
        ':type "content-type" "multipart"': True,
        ':subtype "content-type" "mixed"': True,
        ':contenttype "content-type" "multipart/mixed"': True,
        ':param "boundary" "content-type" "AA"': True,
        ':anychild :param "title" "content-type" "This is even more ***fun*** isn\'t it!"': True,
        ':anychild :type "content-disposition" "attachment"': True,
        ':anychild :contenttype "content-disposition" "attachment"': True,
        ':anychild :param ["filename", "title"] "content-disposition" "Frop!"': True,
        ':anychild :type "content-type" "image"': False,
    }
    for test, expected in cases.items():
        assert filed(f'if header :mime {test} {{ fileinto "y"; }}') == (["y"] if expected else [])
    counted = (
        'if header :mime :anychild :count "eq" :comparator "i;ascii-numeric"'
        ' :param ["filename", "title"] "content-disposition" "2" { fileinto "two"; }'
    )
    assert filed(counted) == ["two"]


def test_extracttext_first_and_modifiers():
    script = (
        "foreverypart {\n"
        '  extracttext "t";\n'
        '  if string :contains "${t}" "first message part" { fileinto "plain"; }\n'
        '  if string :contains "${t}" "piece of HTML text" { fileinto "html"; }\n'
        '  if string :contains "${t}" "<b>" { fileinto "tags"; }\n'
        '  if header :mime "X-Test" "HH" { if string "${t}" "" { fileinto "not-text"; } }\n'
        '  if header :mime "X-Test" "CC" {\n'
        '    extracttext :first 7 "f"; fileinto "${f}";\n'
        '    extracttext :upper :length :first 100 "n"; fileinto "n${n}";\n'
        "  }\n"
        "}\n"
    )
    assert filed(script) == ["plain", "This is", "n53", "html", "not-text"]


def test_extracttext_is_bounded_by_the_variable_size():
    body = b"x" * 100_000
    message = b"Subject: big\r\n\r\n" + body
    script = 'foreverypart { extracttext :length "n"; fileinto "${n}"; }'
    assert filed(script, message, limits=Limits(max_variable_size=1000)) == ["1000"]


def test_every_part_visited_is_a_step():
    with pytest.raises(SieveRuntimeError, match="steps"):
        run(
            'foreverypart { foreverypart { foreverypart { set "a" "b"; } } }',
            limits=Limits(max_steps=40),
        )


def test_an_included_script_loops_below_the_includers_part():
    script = 'foreverypart { if header :mime "X-Test" "BB" { include "inner"; } }'
    inner = 'foreverypart { if header :mime :matches "X-Test" "*" { fileinto "${1}"; } }'
    assert filed(script, includes={"inner": inner}) == ["CC", "DD"]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('require "foreverypart";\nbreak;', 'line 2, column 1: "break" must be inside'),
        (
            'require "foreverypart";\nforeverypart :name "a" { break :name "b"; }',
            'line 2, column 26: "break :name" names no enclosing "foreverypart" called "b"',
        ),
        (
            'require ["extracttext", "variables", "foreverypart"];\nextracttext "x";',
            'line 2, column 1: "extracttext" must be inside',
        ),
        ('require ["extracttext", "variables"];\n', 'needs require "foreverypart"'),
        ('require ["extracttext", "foreverypart"];\n', 'needs require "variables"'),
        ('if header :mime "x" "y" {}', 'line 1, column 11: ":mime" needs require "mime"'),
        ('require "mime";\nif header :anychild "x" "y" {}', 'line 2, column 4: ":anychild" needs'),
        ('require "mime";\nif header :type "x" "y" {}', '":type" needs ":mime"'),
        ('require "mime";\nif exists :mime :type "x" {}', 'unexpected tag ":type"'),
        (
            'require "mime";\nif header :mime :type :subtype "x" "y" {}',
            '":subtype" and ":type" cannot be used together',
        ),
        ("foreverypart { }", 'line 1, column 1: "foreverypart" needs require "foreverypart"'),
        (
            'require "foreverypart";\n' + "foreverypart {" * 5 + "}" * 5,
            'line 2, column 57: "foreverypart" loops nest at most 4 deep',
        ),
    ],
)
def test_refused_at_upload_with_line_and_column(script, message):
    with pytest.raises(SieveSyntaxError) as info:
        parse_script(script)
    assert message in str(info.value)


def test_extracttext_first_counts_the_text_of_html_not_its_markup():
    message = (
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><h1>Deals</h1><p>Click to unsubscribe</p></body></html>\r\n"
    )
    script = 'foreverypart { extracttext :first 12 "t"; set :length "n" "${t}"; fileinto "${n}"; }'
    assert filed(script, message) == ["12"]
    script = 'foreverypart { extracttext :first 5 "t"; fileinto "${t}"; }'
    assert filed(script, message) == ["Deals"]


def test_a_loop_walks_the_message_it_began_with_when_editheader_changes_it():
    script = (
        'require "editheader";\n'
        'foreverypart { if header :mime :matches "X-Test" "*" { fileinto "${1}";'
        ' addheader "X-Added-Long-Header-Name" "a value that shifts every offset"; } }\n'
        'if header :mime :count "eq" :comparator "i;ascii-numeric" "X-Added-Long-Header-Name"'
        ' "8" { fileinto "edited"; }'
    )
    assert filed(script) == ["AA", "BB", "CC", "DD", "EE", "FF", "GG", "HH", "edited"]
