"""The package metadata: SPDX licence, LICENSE shipped, classifiers and URLs, built without deprecation."""

import re
import shutil
import subprocess
import sys
import tomllib
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("from setuptools import build_meta; import sys; "
         "print(build_meta.prepare_metadata_for_build_editable(sys.argv[1]))")


def _metadata(tmp_path: Path, pyproject: str) -> tuple[subprocess.CompletedProcess, Path]:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "attentivenas", project / "attentivenas",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    (project / "pyproject.toml").write_text(pyproject)
    (tmp_path / "out").mkdir()
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "out")], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, tmp_path / "out" / result.stdout.strip().splitlines()[-1]


def test_metadata_builds_without_setuptools_warnings(tmp_path):
    result, dist_info = _metadata(tmp_path, (ROOT / "pyproject.toml").read_text())
    assert "Warning" not in result.stderr, result.stderr[-3000:]
    metadata = Parser().parsestr((dist_info / "METADATA").read_text())
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert (dist_info / "licenses" / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers), "the SPDX expression replaces these"
    for url in metadata.get_all("Project-URL"):
        label, target = (part.strip() for part in url.split(",", 1))
        assert target.startswith("https://") or (ROOT / target).is_file(), url


def test_the_probe_sees_the_deprecated_licence_table(tmp_path):
    deprecated = (ROOT / "pyproject.toml").read_text().replace('license = "MIT"', 'license = {text = "MIT"}')
    deprecated = deprecated.replace('license-files = ["LICENSE"]\n', "")
    result, _ = _metadata(tmp_path, deprecated)
    assert "SetuptoolsDeprecationWarning" in result.stderr


def test_every_dependency_is_pinned_in_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    wanted = [*project["dependencies"], *(d for group in project["optional-dependencies"].values() for d in group)]
    for requirement in wanted:
        assert re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower() in pinned, requirement
