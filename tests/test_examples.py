"""The runnable examples run offline, as their docstrings say, and print what they claim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("SOMLAB_DATA", "RANK", "WORLD_SIZE")}
    env.update(HOME=str(tmp_path), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_quickstart(tmp_path):
    out = _run("quickstart", tmp_path)
    qe, te = map(float, re.search(r"QE ([\d.]+)\s+TE ([\d.]+)", out).groups())
    assert 0 < qe < 0.2 and 0 <= te < 0.1
    assert list((tmp_path / "examples_out").glob("*.png"))


def test_sweep_ensemble_equals_one_at_a_time(tmp_path):
    out = _run("sweep_ensemble", tmp_path)
    assert "same accuracies: True" in out and "ensemble of 16 maps" in out


def test_distributed_example_runs_as_one_process(tmp_path):
    out = _run("distributed_som", tmp_path)  # no torchrun: init_from_env returns None
    assert "[rank 0/1 None]" in out
    assert (tmp_path / "distributed_out" / "som.somlab").is_file()
    assert (tmp_path / "distributed_out" / "batch_sssom.somlab").is_file()


def test_images_demo_on_the_bundled_digits(tmp_path):
    out = _run("images_demo", tmp_path, "--out", str(tmp_path / "demo"))
    row = re.search(r"100%\s+4000\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out)
    assert row, out
    som, knn, spreading = map(float, row.groups())
    assert som > 0.9 and knn > 0.9 and spreading > 0.9  # .946 / .941 / .947 measured
    assert (tmp_path / "demo" / "table3_mnist_quick.md").is_file()
