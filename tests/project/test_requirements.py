"""requirements/*.txt and pyproject.toml name the same dependencies."""

import tomllib

from tests.helpers import ROOT


def requirement_lines(name: str) -> set[str]:
    lines = (ROOT / "requirements" / name).read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))}


def test_requirement_files_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    used_here = [
        *project["dependencies"],
        *extras["postgres"],
        *extras["scheduler"],
        *extras["metrics"],
        *extras["demo"],
    ]
    assert requirement_lines("base.txt") == set(used_here)
    assert requirement_lines("dev.txt") == set(project["optional-dependencies"]["dev"])
    assert requirement_lines("prod.txt") == set(project["optional-dependencies"]["prod"])
    for name in ("dev.txt", "prod.txt"):
        assert "-r base.txt" in (ROOT / "requirements" / name).read_text()
