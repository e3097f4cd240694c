"""A catalogue of real-data traps for the readers, the command line and model files (issue 17,
points 3, 4, 6, 7, 8, 9, 11), so that they stay fixed.

Each test builds the kind of file people really have (Excel exports, instrument tables with
numeric headers, timestamps, wide tables) or the fault they really meet (a full disk, an edited
model file, a killed sweep) and checks that somlab neither drops nor adds a row, nor answers
silently wrong, nor prints a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import somlab
from somlab import DataError, ModelFileError
from somlab import datasets as ds
from somlab.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for frag in fragments:
        assert frag in err, (frag, err)


# ------------------------------------------------------------------ Excel CSVs (17.3)


def test_excel_na_first_row_is_data_not_a_comment(tmp_path):
    f = tmp_path / "excel.csv"
    f.write_text("#N/A,2,3\n4,5,6\n7,#N/A,9\n10,11,12\n")
    X, y = ds.load_file(f)
    assert X.shape == (4, 3) and y is None  # was 3 rows: '#N/A...' taken as a comment
    assert np.isnan(X[0, 0]) and np.isnan(X[2, 1]) and np.isfinite(X[1]).all()


@pytest.mark.parametrize("marker", ["#N/A", "NA", "?", "", "N/A", "nan", "NULL"])
def test_missing_markers_are_nan(tmp_path, marker):
    f = tmp_path / "m.csv"
    f.write_text(f"a,b\n1,{marker}\n3,4\n")
    X, _ = ds.load_file(f)
    assert X.shape == (2, 2) and np.isnan(X[0, 1]) and X[1, 1] == 4


@pytest.mark.parametrize("first", ["-,2,3", "0x10,2,3", "1,-,3"])
def test_odd_first_row_is_not_a_header(tmp_path, first):
    f = tmp_path / "odd.csv"
    f.write_text(f"{first}\n4,5,6\n7,8,9\n")
    with pytest.raises(DataError) as e:  # was: silently a header, one row fewer
        ds.load_file(f)
    msg = str(e.value)
    assert "line 1" in msg and "is not a number" in msg and "\n" not in msg


def test_comment_lines_only_when_asked(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("# exported 2026-12-01\n1,2\n3,4\n")
    with pytest.raises(DataError, match="pass comment='#'"):  # an error with a hint, no drop
        ds.load_file(f)
    X, _ = ds.load_file(f, comment="#")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_ragged_rows_are_errors_not_padding(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DataError, match="line 3 has 2 fields, expected 3"):
        ds.load_file(short)
    long = tmp_path / "long.csv"
    long.write_text("1,2,3\n4,5,6,7\n")
    with pytest.raises(DataError, match="line 2 has 4 fields, expected 3"):
        ds.load_file(long)


def test_empty_cells_are_nan_not_ragged(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("1,,3\n4,5,\n")
    X, _ = ds.load_file(f)
    assert X.shape == (2, 3) and np.isnan(X[0, 1]) and np.isnan(X[1, 2])


# ------------------------------------------------------------------ numeric headers (17.3)


def test_numeric_header_needs_header_true(tmp_path):
    f = tmp_path / "spectra.csv"
    f.write_text("400,410,420\n0.1,0.2,0.3\n0.4,0.5,0.6\n")
    X, _ = ds.load_file(f)  # documented rule: a row of numbers is data unless header=True
    assert X.shape == (3, 3)
    X, _ = ds.load_file(f, header=True)
    np.testing.assert_array_equal(X, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    X, _ = ds.load_file(tmp_path / "spectra.csv", header=False)
    assert X.shape == (3, 3)
    with pytest.raises(DataError, match="header must be"):
        ds.load_file(f, header="yes")


def test_text_header_and_label_by_name(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("x,y,label\n1,2,a\n3,4,b\n5,6,\n")
    X, y = ds.load_file(f, label_column="label")
    assert X.shape == (3, 2)
    np.testing.assert_array_equal(y, [0, 1, -1])


def test_cli_header_flag_and_predict_prints_one_line_per_row(tmp_path, capsys):
    f = tmp_path / "spectra.csv"
    rng = np.random.default_rng(0)
    rows = rng.random((25, 3))
    f.write_text("400,410,420\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    model = tmp_path / "m.somlab"
    code, out, _ = run(capsys, "fit", f, "--header", "-o", model, "--grid", "2x2", "--json")
    assert code == 0 and json.loads(out)["n_samples"] == 25
    code, out, _ = run(capsys, "predict", model, f, "--header")
    assert code == 0 and len(out.strip().splitlines()) == 25
    code, out, _ = run(capsys, "predict", model, f, "--no-header")
    assert code == 0 and len(out.strip().splitlines()) == 26  # the numbers are a row


def test_cli_predict_keeps_rows_with_excel_missing_values(tmp_path, capsys):
    f = tmp_path / "excel.csv"
    rng = np.random.default_rng(1)
    lines = [",".join(map(str, r)) for r in rng.random((20, 3))]
    lines[0] = "#N/A," + lines[0].split(",", 1)[1]
    lines[7] = lines[7].rsplit(",", 1)[0] + ",#N/A"
    f.write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.somlab"
    code, _, err = run(capsys, "fit", f, "--missing", "ignore", "-o", model, "--grid", "2x2")
    assert code == 0, err
    code, out, _ = run(capsys, "predict", model, f)
    assert code == 0 and len(out.strip().splitlines()) == 20
    out_file = tmp_path / "pred.txt"
    code, _, _ = run(capsys, "predict", model, f, "-o", out_file)
    assert code == 0 and len(out_file.read_text().splitlines()) == 20


# ------------------------------------------------------------------ ARFF (17.3)


def test_numeric_arff_without_class_has_no_labels(tmp_path):
    f = tmp_path / "num.arff"
    f.write_text("@relation r\n@attribute a numeric\n@attribute b numeric\n@data\n1,2\n3,4\n")
    X, y = ds.load_file(f)
    assert y is None and X.shape == (2, 2)  # was: b taken as y
    g = tmp_path / "nom.arff"
    g.write_text("@relation r\n@attribute a numeric\n@attribute kind {u,v}\n@data\n1,u\n3,v\n")
    X, y = ds.load_file(g)
    assert X.shape == (2, 1)
    np.testing.assert_array_equal(y, [0, 1])


# ------------------------------------------------------------------ precision (17.4)


def test_timestamps_keep_their_precision(tmp_path):
    t = 1.7e9 + np.random.default_rng(0).uniform(0, 100, 300)
    f = tmp_path / "ts.csv"
    np.savetxt(f, np.column_stack([t, np.arange(300)]), delimiter=",", fmt="%.6f")
    X, _ = ds.load_file(f)
    assert X.dtype == np.float64 and np.unique(X[:, 0]).size == 300  # float32: ~10 values
    np.testing.assert_allclose(X[:, 0], t, rtol=0, atol=1e-6)


def test_npy_keeps_float64_and_a_huge_value_is_reported_as_such(tmp_path, capsys):
    a = np.random.default_rng(0).random((30, 3))
    f = tmp_path / "x.npy"
    np.save(f, a)
    X, _ = ds.load_file(f)
    assert X.dtype == np.float64 and np.array_equal(X, a)
    a[0, 0] = 1e300
    np.save(f, a)
    assert ds.load_file(f)[0][0, 0] == 1e300  # not inf
    code, _, err = run(capsys, "fit", f, "-o", tmp_path / "m.somlab", "--grid", "2x2")
    one_line_error(code, err, "float32")
    assert "inf" not in err.lower().replace("infinit", "")


def test_small_integers_and_float16_become_float32_wide_integers_float64(tmp_path):
    for dtype, expected in (
        (np.uint8, np.float32),
        (np.float16, np.float32),
        (np.int64, np.float64),
    ):
        f = tmp_path / f"{np.dtype(dtype).name}.npy"
        np.save(f, np.arange(6, dtype=dtype).reshape(3, 2))
        assert ds.load_file(f)[0].dtype == expected


def test_datetime_column_in_a_data_frame_is_named(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=20, freq="h"), "v": 1.0})
    with pytest.raises(DataError, match="column 'when' holds timestamps"):
        somlab.SOM((2, 2), epochs=1).fit(df)
    text = pd.DataFrame({"v": 1.0, "tag": ["x"] * 20})
    with pytest.raises(DataError, match="column 'tag' is not numeric"):
        somlab.SOM((2, 2), epochs=1).fit(text)


def test_timestamp_strings_in_a_csv_are_an_error_naming_the_cell(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("when,v\n2026-01-01 00:00,1\n2026-01-01 01:00,2\n")
    with pytest.raises(DataError, match="line 2, column when: '2026-01-01 00:00' is not a num"):
        ds.load_file(f)


# ------------------------------------------------------------------ wide tables


def test_wide_table_with_header(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((5, 20000))
    f = tmp_path / "wide.csv"
    header = ",".join(f"g{j}" for j in range(X.shape[1]))
    np.savetxt(f, X, delimiter=",", header=header, comments="", fmt="%.17g")
    Y, y = ds.load_file(f)
    assert Y.shape == (5, 20000) and y is None
    np.testing.assert_array_equal(Y, X)  # round trip, exact


# ------------------------------------------------------------------ files and folders (17.8)


def test_missing_folder_and_unreadable_data_files(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="file not found"):
        ds.load_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="got a directory"):
        ds.load_file(tmp_path)
    f = tmp_path / "locked.csv"
    f.write_text("1,2\n")
    import builtins

    real_open = builtins.open

    def denied(file, *a, **k):  # tests run as root: simulate chmod 000
        if str(file) == str(f):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(DataError, match="permission denied"):
        ds.load_file(f)


# ------------------------------------------------------------------ command line (17.7, 17.8)


def test_json_never_prints_nan(tmp_path, capsys):
    code, out, _ = run(
        capsys, "fit", "toy:iris", "-o", tmp_path / "one.somlab", "--grid", "1x1", "--json"
    )
    assert code == 0 and "NaN" not in out
    info = json.loads(out)
    assert info["topographic_error"] is None  # a 1x1 map has no neighbours
    code, out, _ = run(capsys, "evaluate", tmp_path / "one.somlab", "toy:iris", "--json")
    assert code == 0 and "NaN" not in out and json.loads(out)["topographic_error"] is None


def test_json_safe_helper():
    from somlab.cli import json_text

    text = json_text({"a": float("nan"), "b": [np.float32(np.inf), -np.inf], "c": np.arange(2)})
    assert json.loads(text) == {"a": None, "b": [None, None], "c": [0, 1]}


def test_evaluate_a_saved_ensemble(tmp_path, capsys):
    X, y = ds.load_toy("iris")
    ens = somlab.SOMEnsemble((2, 2), sigma=[1.0, 0.5], epochs=2, random_state=0).fit(X)
    path = ens.save(tmp_path / "ens.somlab")
    code, out, err = run(capsys, "evaluate", path, "toy:iris", "--json")
    assert code == 0, err  # was: IndexError
    rep = json.loads(out)
    assert rep["n_maps"] == 2 and len(rep["maps"]) == 2
    qe = ens.quantization_error(X)
    assert [m["quantization_error"] for m in rep["maps"]] == pytest.approx(qe.tolist())
    assert all(0 < m["purity"] <= 1 for m in rep["maps"])
    code, out, _ = run(capsys, "evaluate", path, "toy:iris")
    assert code == 0 and "map 1:" in out
    code, out, _ = run(capsys, "predict", path, "toy:iris")
    assert code == 0 and len(out.splitlines()) == 150 and len(out.splitlines()[0].split()) == 2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["fit", "toy:iris", "-o", "x.somlab", "--device", "meta"], "device must be"),
        (["predict", "MODEL", "toy:iris", "--device", "meta"], "device must be"),
        (["fit", "toy:iris", "--header", "-o", "x.somlab"], "apply to files"),
    ],
)
def test_cli_one_line_errors(tmp_path, capsys, argv, needle):
    model = tmp_path / "m.somlab"
    run(capsys, "fit", "toy:iris", "-o", model, "--grid", "2x2", "--quiet")
    argv = [str(model) if a == "MODEL" else a for a in argv]
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, needle)


def test_plot_prototypes_bad_image_shape(tmp_path, capsys):
    model = tmp_path / "m.somlab"
    run(capsys, "fit", "toy:iris", "-o", model, "--grid", "2x2", "--quiet")
    with pytest.raises(SystemExit) as e:
        main(["plot", str(model), "prototypes", "--image-shape", "abc"])
    assert e.value.code == 2 and "ROWSxCOLS" in capsys.readouterr().err
    code, _, err = run(capsys, "plot", model, "prototypes", "--image-shape", "3x3")
    one_line_error(code, err, "9 pixels", "4 features")


def test_cli_model_path_messages(tmp_path, capsys):
    code, _, err = run(capsys, "predict", tmp_path / "none.somlab", "toy:iris")
    one_line_error(code, err, "not found")
    code, _, err = run(capsys, "predict", tmp_path, "toy:iris")
    one_line_error(code, err, "is a folder")


# ------------------------------------------------------------------ full disk (17.6)


def test_cli_fit_on_a_full_disk(tmp_path, capsys, monkeypatch):
    import safetensors
    import safetensors.numpy

    model = tmp_path / "m.somlab"
    assert run(capsys, "fit", "toy:iris", "-o", model, "--grid", "2x2", "--quiet")[0] == 0
    before = model.read_bytes()

    def full(arrays, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)
        raise safetensors.SafetensorError(
            "Error while serializing: IoError(Os { code: 28, kind: StorageFull })"
        )

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    code, _, err = run(capsys, "fit", "toy:iris", "-o", model, "--grid", "3x3", "--quiet")
    one_line_error(code, err, str(model), "No space left on device")
    assert model.read_bytes() == before  # the old model is intact
    code, _, err = run(capsys, "fit", "toy:iris", "-o", tmp_path / "new.somlab", "--quiet")
    one_line_error(code, err, "new.somlab")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.somlab"]  # nothing half-written


def test_report_writing_is_atomic_on_a_full_disk(tmp_path, monkeypatch):
    from somlab.experiments import runner

    runner.write_report(tmp_path, "t", {"x": float("nan")}, "# old\n")
    assert json.loads((tmp_path / "t.json").read_text()) == {"x": None}
    real = os.replace

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="t.json"):
        runner.write_report(tmp_path, "t", {"x": 2}, "# new\n")
    monkeypatch.setattr(os, "replace", real)
    assert (tmp_path / "t.md").read_text() == "# old\n"
    assert json.loads((tmp_path / "t.json").read_text()) == {"x": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.md"]


# ------------------------------------------------------------------ edited model files (17.9)


def test_edited_model_file_cannot_set_methods(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from somlab.persistence import _digest

    X = np.random.default_rng(0).random((40, 3))
    path = somlab.SOM((2, 2), epochs=1).fit(X).save(tmp_path / "m.somlab")
    with safe_open(str(path), framework="numpy") as f:
        meta, arrays = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    attrs = json.loads(meta["attributes"])
    attrs["predict"] = "boom"
    meta["attributes"] = json.dumps(attrs)
    meta["sha256"] = _digest(arrays, meta["params"], meta["attributes"])
    save_file(arrays, tmp_path / "evil.somlab", metadata=meta)
    with pytest.raises(ModelFileError, match="'predict' is not one SOM declares"):
        somlab.load(tmp_path / "evil.somlab")


# ------------------------------------------------------------------ killed sweeps (17.11)


def test_worker_ends_when_the_sweep_process_is_killed(tmp_path):
    """A stand-in for a loky worker: a grandchild that calls ``_watch_parent`` on its parent;
    kill -9 the parent and the grandchild must be gone within a few seconds."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = (
        "import sys, time; from somlab.experiments.runner import _watch_parent; "
        "_watch_parent(int(sys.argv[1]), 0.05); print('ready', flush=True); time.sleep(120)"
    )
    parent = (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())],"
        " stdout=subprocess.PIPE, text=True)\n"
        "ok = p.stdout.readline().strip() == 'ready'\n"
        "print(p.pid if ok else 'the worker did not start', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        worker = int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent by 10 s")


def test_header_options_on_a_binary_file_are_an_error(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.ones((3, 2)))
    with pytest.raises(DataError, match="apply to text files"):
        ds.load_file(f, header=True)
    with pytest.raises(DataError, match="apply to text files"):
        ds.load_file(f, comment="#")


def test_numeric_header_in_auto_mode_is_kept_as_data_but_warned(tmp_path):
    """``400,410,420,430`` above spectra: header="auto" cannot know, so it keeps the row (no
    silent drop) and says how to read it as names; header=True / False are silent."""
    import warnings

    rng = np.random.default_rng(0)
    rows = ["400,410,420,430"] + [",".join(f"{v:.3f}" for v in rng.random(4)) for _ in range(20)]
    p = tmp_path / "spectra.csv"
    p.write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="looks like column names made of numbers.*header=True"):
        X, _ = ds.load_file(p)[:2]
    assert X.shape == (21, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds.load_file(p, header=True)[0].shape == (20, 4)
        assert ds.load_file(p, header=False)[0].shape == (21, 4)
        q = tmp_path / "plain.csv"
        q.write_text("\n".join(rows[1:]) + "\n")
        assert ds.load_file(q)[0].shape == (20, 4)  # ordinary data: no warning
