"""The README's quick start runs as printed, offline, and gives what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _quick_start_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") : text.index("## Models and features")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_quick_start_runs_offline(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*args, **kwargs):
        raise AssertionError("the quick start must not need a network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.delenv("SOMLAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/somlab: only bundled data
    monkeypatch.chdir(tmp_path)
    blocks = _quick_start_blocks()
    assert len(blocks) == 4  # SOM, MiniSom, relevance maps, DC-SOMRL
    ns: dict = {}

    def run(i):
        exec(compile(blocks[i], f"README.md quick start block {i + 1}", "exec"), ns)

    run(0)  # a fitted 10x10 map, its plots and a model file that loads to the same answers
    assert ns["nodes"].shape == (150,) and ns["dist"].shape == (150, 100)
    assert 0 < ns["som"].quantization_error_ < 0.2
    assert (tmp_path / "umatrix.png").stat().st_size > 0 and (tmp_path / "iris.somlab").is_file()
    run(1)  # MiniSom's API on the same data
    assert ns["som"].get_weights().shape == (10, 10, 4)
    assert ns["som"].quantization_error(ns["X"]) < 0.2  # .053 measured
    run(2)  # the relevance maps, labels -1 = unlabelled
    assert (ns["b"].y_train == -1).mean() == pytest.approx(0.9, abs=0.01)
    assert ns["model"].score(ns["b"].X_test, ns["b"].y_test) > 0.6  # .648 measured
    rel = ns["model"].relevances_
    assert rel.min() >= 0 and rel.max() <= 1
    run(3)  # DC-SOMRL on the bundled 5,000 digits (purity .626 measured)
    assert ns["X"].shape == (5000, 784)
    assert ns["dc"].score(ns["X"], ns["y"]) > 0.5 and 1 <= ns["dc"].n_prototypes_ <= 64
    codes = ns["codes"]
    assert codes.shape == (5000, 10) and np.all((codes > 0) & (codes < 1))
    assert np.isfinite(float(ns["loss"].detach()))
