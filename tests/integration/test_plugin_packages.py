"""Plugin packages pass their own tests, written with the test kit and run the way their
authors run them: the example echo plugin, and what `stalwart-py plugin new` writes."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stalwart_py.cli import main
from tests.support.plugin_packages import pip_install, run_pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_echo_plugin_passes_its_own_tests(echo_plugin):
    result = run_pytest(ROOT / "examples" / "echo-plugin", echo_plugin)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_plugin_new_writes_a_package_that_passes_its_own_test(tmp_path):
    package = tmp_path / "stalwart-py-demo"
    made = subprocess.run(
        [sys.executable, "-m", "stalwart_py", "plugin", "new", "demo", "--directory", str(package)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"wrote {package / 'demo_plugin' / '__init__.py'}" in made.stdout
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["stalwart_py.protocols"] == {"demo": "demo_plugin:Demo"}
    env = pip_install(package, tmp_path / "site", tmp_path)
    assert list((tmp_path / "site").glob("stalwart_py_demo-0.1.0.dist-info"))
    result = run_pytest(package, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_a_hyphenated_name_makes_python_names(tmp_path, capsys):
    assert main(["plugin", "new", "my-proto", "--directory", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "my_proto_plugin" / "__init__.py").exists()
    assert (tmp_path / "p" / "tests" / "test_my_proto.py").exists()
    text = (tmp_path / "p" / "my_proto_plugin" / "__init__.py").read_text()
    assert 'name = "my-proto"' in text and "class MyProto(Protocol):" in text
    compile(text, "generated", "exec")


@pytest.mark.parametrize("name", ["Demo", "1demo", "de_mo", "demo-", ""])
def test_a_bad_name_is_refused(tmp_path, capsys, name):
    assert main(["plugin", "new", name, "--directory", str(tmp_path / "p")]) == 1
    assert "is not a protocol name" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_an_occupied_directory_is_left_alone(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["plugin", "new", "demo", "--directory", str(tmp_path)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
