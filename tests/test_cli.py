import argparse
import json
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from attentivenas import __version__
from attentivenas.__main__ import build_parser, main

PAPER_MIN = {"resolution": 192, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792],
             "depth": [1, 3, 3, 3, 3, 3, 1], "kernel_size": [3] * 7, "expand_ratio": [1, 4, 4, 4, 4, 6, 6]}


def test_flops_command_table_and_json(tmp_path, capsys):
    path = tmp_path / "a0.json"
    path.write_text(json.dumps(PAPER_MIN))
    assert main(["flops", "--space", "attentivenas", str(path)]) == 0
    assert "203.39" in capsys.readouterr().out
    assert main(["flops", "--space", "attentivenas", "--json", str(path), str(path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and rows[0]["file"] == str(path)
    assert round(rows[0]["mflops"], 2) == 203.39 and set(rows[0]) == {"file", "mflops", "params_m"}


def test_flops_command_rejects_a_subnet_outside_the_space(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**PAPER_MIN, "depth": [1, 3, 3, 3, 3, 3, 9]}))
    assert main(["flops", str(path)]) == 2
    err = capsys.readouterr().err
    assert "depth[6] (mb7) = 9" in err and "allowed: 1, 2" in err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "attentivenas", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "flops" in result.stdout


def test_version_comes_from_the_package(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"attentivenas {__version__}"
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "attentivenas.__version__"}


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from ((f"{name} {option}", help_text) for option, help_text in _options(command))
        else:
            yield "/".join(action.option_strings) or action.dest, action.help


def test_every_option_of_every_command_has_help():
    options = list(_options(build_parser()))
    assert len(options) > 40
    missing = [option for option, help_text in options if not help_text or help_text == argparse.SUPPRESS]
    assert not missing, f"options without help text: {missing}"


def test_verbosity_flags_set_the_package_log_level(tmp_path, capsys):
    path = tmp_path / "a0.json"
    path.write_text(json.dumps(PAPER_MIN))
    logger = logging.getLogger("attentivenas")
    for argv, level in ((["flops"], logging.INFO), (["-v", "flops"], logging.DEBUG), (["-q", "flops"], logging.WARNING),
                        (["flops", "-q"], logging.WARNING), (["-vv", "flops"], logging.DEBUG)):
        assert main([*argv, "--space", "attentivenas", str(path)]) == 0
        assert logger.level == level, argv
    capsys.readouterr()
    assert main(["-q", "flops", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "ERROR" in err and "missing.json" in err and "Traceback" not in err
    assert len([h for h in logger.handlers if getattr(h, "attentivenas_cli", False)]) == 1


def test_status_messages_are_logged_to_stderr_and_quiet_silences_them(tmp_path, capsys, monkeypatch):
    from attentivenas.cli import flops as flops_command

    path = tmp_path / "a0.json"
    path.write_text(json.dumps(PAPER_MIN))
    assert main(["flops", "--space", "attentivenas", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "203.39" in out and "203.39" not in err
    monkeypatch.setattr(flops_command, "run", lambda args: logging.getLogger("attentivenas.cli").info("hello") or 0)
    assert main(["flops", str(path)]) == 0
    assert "INFO hello" in capsys.readouterr().err
    assert main(["-q", "flops", str(path)]) == 0
    assert capsys.readouterr().err == ""
