"""``include`` (RFC 6609) with global scripts: the two namespaces, global variables across
them, :once and :optional per namespace, recursion refused at run time (including the
running script itself) and the depth limit. Upload checks: tests/integration/
test_sieve_delivery_include.py."""

from __future__ import annotations

import pytest

from stalwart_py.sieve import Environment, Interpreter, MessageView, parse_script
from stalwart_py.sieve.actions import FileInto, Limits, SieveRuntimeError

REQUIRE = 'require ["include", "variables", "fileinto"];\n'
MESSAGE = b"From: ann@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"


def run(script: str, includes: dict[str, str], *, own_key: str | None = None, limits=None):
    environment = Environment(MessageView(MESSAGE), "ann@remote.test", "bob@example.test")
    compiled = {key: parse_script(REQUIRE + text) for key, text in includes.items()}
    interpreter = Interpreter(
        parse_script(REQUIRE + script), environment, includes=compiled, own_key=own_key,
        limits=limits,
    )  # fmt: skip
    outcome = interpreter.run()
    return [a.mailbox for a in outcome.actions if isinstance(a, FileInto)]


def test_global_and_personal_scripts_are_two_namespaces_sharing_globals():
    includes = {
        "global/rules": 'global "who";\nset "who" "global";\nfileinto "G-${who}";',
        "rules": 'global "who";\nfileinto "P-${who}";',
    }
    script = (
        'global "who";\ninclude :global "rules";\ninclude :personal "rules";\n'
        'include :global :once "rules";\ninclude :once :global "rules";\n'
        'fileinto "${global.who}";'
    )
    assert run(script, includes) == ["G-global", "P-global", "global"]


def test_missing_optional_and_missing_required():
    assert run('include :global :optional "nope"; fileinto "after";', {}) == ["after"]
    with pytest.raises(SieveRuntimeError, match='no global script "nope"'):
        run('include :global "nope";', {"nope": 'fileinto "personal";'})


def test_recursion_is_a_runtime_error_including_the_running_script():
    with pytest.raises(SieveRuntimeError, match="includes itself"):
        run('include "main";', {"main": "keep;"}, own_key="main")
    loop = {"global/a": 'include :global "b";', "global/b": 'include :global "a";'}
    with pytest.raises(SieveRuntimeError, match='"global/a" includes itself'):
        run('include :global "a";', loop)
    chain = {f"s{i}": f'include "s{i + 1}";' for i in range(6)} | {"s6": "keep;"}
    with pytest.raises(SieveRuntimeError, match="too many included scripts"):
        run('include "s0";', chain, limits=Limits(max_include_depth=4))
