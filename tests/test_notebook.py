"""`examples/quickstart.ipynb` runs from top to bottom: its code cells, in order, in a fresh interpreter."""

import json
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs_and_says_what_it_did(tmp_path):
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) == 6 and not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    script = tmp_path / "quickstart.py"
    script.write_text("\n\n".join(cells) + "\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "patches (4000, 100) classes: 4" in out and "clean test accuracy:" in out
    assert "spikes per layer (input first):" in out and "accuracy after sleep:" in out
    assert out.count("FGSM median epsilon") == 2 and out.count(".png") == 3
