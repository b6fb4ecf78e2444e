import json
import subprocess
import sys

from attentivenas.__main__ import main

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
