"""``import somlab`` is lazy (PEP 562): cheap, and every public name and subpackage is still
reachable as ``somlab.NAME`` after a bare ``import somlab``."""

import subprocess
import sys

SUBPACKAGES = ("compat", "core", "datasets", "deep", "distributed", "experiments", "features",
               "metrics", "nn", "persistence", "plotting", "relevance", "som")  # fmt: skip


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bare_import_loads_no_torch_and_no_sklearn():
    out = _run("import sys, somlab; print('torch' in sys.modules, 'sklearn' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_public_names_and_subpackages_after_a_bare_import():
    import somlab

    names = ",".join(f"somlab.{n}" for n in (*somlab.__all__, *SUBPACKAGES) if n != "__version__")
    out = _run(f"import somlab; print(len([{names}]))")
    assert int(out) == len(somlab.__all__) - 1 + len(SUBPACKAGES)
    assert _run("import somlab; print(somlab.SOMClassifier.__module__)").startswith("somlab.som")


def test_unknown_name_is_an_attribute_error():
    out = _run("import somlab\ntry:\n    somlab.nope\nexcept AttributeError as e:\n    print(e)")
    assert "no attribute 'nope'" in out
