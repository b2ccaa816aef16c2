"""``Index.open_or_create``: the README's Python example runs again on the index it made."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_readme_python_example_runs_twice(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    assert "Index.open_or_create(" in example
    check = example + "\nwith Index.open('my-index') as again:\n    print(again.info().documents, len(hits))\n"
    runs = [subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=os.environ.copy(),
                           capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    assert runs[0].stdout == runs[1].stdout == "3 2\n"  # the second run replaced the texts by id
