"""THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256 sections 2.2 and 4) on small
mailboxes whose answers follow from the RFC's steps, and the ``* THREAD`` syntax."""

from __future__ import annotations

from protocols.imap.thread import ThreadMessage, ordered_subject, references, render


def msg(uid, subject="topic", refs=(), reply=False, sent=None, own=True):
    return ThreadMessage(
        uid,
        float(uid if sent is None else sent),
        subject.upper(),
        reply,
        f"<{uid}@x>" if own else None,
        tuple(f"<{ref}@x>" for ref in refs),
    )


def threads(messages, algorithm=references) -> bytes:
    return render(algorithm(messages), lambda uid: uid)


def test_the_syntax_example_of_section_4():
    # (2)(3 6 (4 23)(44 7 96)): 6 answers 3; 4 and 44 answer 6; 23 answers 4; 7 answers
    # 44 and 96 answers 7
    messages = [
        msg(2, "other"),
        msg(3),
        msg(6, refs=[3], reply=True),
        msg(4, refs=[3, 6], reply=True),
        msg(23, refs=[3, 6, 4], reply=True),
        msg(44, refs=[3, 6], reply=True),
        msg(7, refs=[3, 6, 44], reply=True),
        msg(96, refs=[3, 6, 44, 7], reply=True),
    ]
    assert threads(messages) == b"(2)(3 6 (4 23)(44 7 96))"


def test_a_missing_parent_is_a_dummy_with_two_children():
    messages = [msg(3, "a", refs=["gone"]), msg(5, "b", refs=["gone"])]
    assert threads(messages) == b"((3)(5))"
    # a dummy with a single child is not kept
    assert threads([msg(3, "a", refs=["gone"])]) == b"(3)"


def test_truncated_references_and_in_reply_to():
    # 2 names only its direct parent (an In-Reply-To stands in for References)
    messages = [msg(1), msg(2, refs=[1], reply=True), msg(3, refs=[2], reply=True)]
    assert threads(messages) == b"(1 2 3)"


def test_loops_are_not_created():
    messages = [msg(1, refs=[2]), msg(2, refs=[1])]
    out = threads(messages)
    assert out in (b"(1 2)", b"(2 1)")
    assert threads([msg(1, refs=[1])]) == b"(1)"


def test_subjects_gather_threads():
    # no references at all: a reply is put under the original of the same base subject,
    # two originals of one subject go under a dummy
    messages = [
        msg(1, "lunch", own=False),
        msg(2, "lunch", reply=True, own=False),
        msg(3, "party", own=False),
        msg(4, "party", own=False),
        msg(5, "", own=False),
        msg(6, "", own=False),
    ]
    assert threads(messages) == b"(1 2)((3)(4))(5)(6)"


def test_duplicate_message_ids_are_made_unique():
    messages = [msg(1, "a"), ThreadMessage(2, 2.0, "B", False, "<1@x>", ())]
    assert threads(messages) == b"(1)(2)"


def test_children_and_threads_are_sorted_by_sent_date():
    messages = [
        msg(1, "x", sent=50),
        msg(2, "y", refs=[1], reply=True, sent=40),
        msg(3, "y", refs=[1], reply=True, sent=30),
        msg(4, "z", sent=10),
    ]
    assert threads(messages) == b"(4)(1 (3)(2))"


def test_ordered_subject():
    messages = [
        msg(1, "b", sent=5),
        msg(2, "a", sent=3),
        msg(3, "b", sent=1),
        msg(4, "a", sent=4),
        msg(5, "c", sent=2),
        msg(6, "b", sent=6),
    ]
    # threads by the date of their first message: b (3) at 1, c (5) at 2, a (2) at 3
    assert threads(messages, ordered_subject) == b"(3 (1)(6))(5)(2 4)"


def test_deep_chains_do_not_recurse():
    messages = [msg(1)] + [msg(n, refs=[n - 1], reply=True) for n in range(2, 5001)]
    out = threads(messages)
    assert out == b"(" + b" ".join(b"%d" % n for n in range(1, 5001)) + b")"


def test_empty():
    assert threads([]) == b""
