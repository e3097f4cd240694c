"""Long experiments, skipped by default: `make test-slow` (pytest -m slow) runs them."""

import json

import pytest

from somlab.cli import main


@pytest.mark.slow
def test_reproduce_table2_quick_preset(tmp_path, capsys):
    code = main(["reproduce", "table2", "--quick", "--out-dir", str(tmp_path), "--quiet", "--json"])
    assert code == 0
    table = json.loads(capsys.readouterr().out)
    md = (tmp_path / "table2_quick.md").read_text()
    assert "somlab reproduce table2" in md and ".763" in md  # command and paper numbers
    assert (tmp_path / "table2_quick.png").stat().st_size > 0
    text = json.dumps(table)
    assert "breast" in text.lower() and "glass" in text.lower()
