"""examples/map_toolkit.py (the README gallery's toolkit row) runs offline and says what it did."""

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "map_toolkit.py"


def test_map_toolkit_example(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "g")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    k, ari = re.search(
        r"wine: (\d+) clusters .* ARI with the cultivars ([\d.]+)", out.stdout
    ).groups()
    assert 2 <= int(k) <= 10 and float(ari) > 0.5
    acc = float(re.search(r"SOMClassifier 5-fold accuracy ([\d.]+)", out.stdout).group(1))
    assert acc > 0.85
    assert len(list((tmp_path / "g").glob("*.png"))) == 6
