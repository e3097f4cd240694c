"""The somlab command line: results, --json, and one-line errors with exit code 2."""

import json

import numpy as np
import pytest

from somlab import load
from somlab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def csv_file(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (30, 3)), rng.normal(1, 0.1, (30, 3))])
    y = np.repeat([0, 1], 30)
    path = tmp_path / "blobs.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,c,label", comments="")
    return path


def test_fit_predict_evaluate_roundtrip(tmp_path, capsys, csv_file):
    model = tmp_path / "m.somlab"
    code, out, _ = run(
        capsys,
        "fit",
        str(csv_file),
        "--label-column",
        "last",
        "-o",
        str(model),
        "--grid",
        "3x4",
        "--topology",
        "hexagonal",
        "--epochs",
        "5",
        "--json",
    )
    assert code == 0
    info = json.loads(out)
    assert info["grid"] == [3, 4] and info["n_samples"] == 60 and info["n_features"] == 3
    som = load(model)
    assert som.weights_.shape == (3, 4, 3) and som.topology == "hexagonal"

    code, out, _ = run(
        capsys, "predict", str(model), str(csv_file), "--label-column", "last", "--json"
    )
    preds = json.loads(out)["predictions"]
    X = np.loadtxt(csv_file, delimiter=",", skiprows=1)[:, :3]
    assert preds == som.predict(X).tolist()

    code, out, _ = run(
        capsys, "evaluate", str(model), str(csv_file), "--label-column", "last", "--json"
    )
    rep = json.loads(out)
    assert code == 0
    assert rep["quantization_error"] == pytest.approx(som.quantization_error(X), rel=1e-6)
    # two well separated blobs: every node is pure
    assert rep["purity"] == 1.0 and rep["n_labelled"] == 60


def test_plot_writes_png(tmp_path, capsys, csv_file):
    model = tmp_path / "m.somlab"
    assert run(capsys, "fit", str(csv_file), "-o", str(model), "--grid", "3x3", "--quiet")[0] == 0
    png = tmp_path / "u.png"
    code, out, _ = run(capsys, "plot", str(model), "umatrix", "-o", str(png), "--json")
    assert code == 0 and json.loads(out)["path"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "plot", str(model), "markers", "-o", str(png))
    assert code == 2 and "needs --data" in err


def test_bundled_data_and_datasets_listing(tmp_path, capsys):
    code, out, _ = run(capsys, "datasets", "--json")
    names = {d["name"] for d in json.loads(out)["datasets"]}
    assert {"iris", "breast", "mnist"} <= names
    model = tmp_path / "iris.somlab"
    code, out, _ = run(capsys, "fit", "toy:iris", "-o", str(model), "--grid", "4x4", "--json")
    assert code == 0 and json.loads(out)["n_samples"] == 150
    code, out, _ = run(
        capsys, "fit", "image:mnist_5000", "-o", str(tmp_path / "d.somlab"), "--grid", "3x3",
        "--epochs", "1", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["n_samples"] == 5000


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["fit", "/nonexistent.csv", "-o", "x.somlab"], "nonexistent"),
        (["predict", "/nonexistent.somlab", "toy:iris"], "not found"),
        (["fit", "toy:nosuchset", "-o", "x.somlab"], "nosuchset"),
        (["fit", "image:svhn", "-o", "x.somlab"], "unknown image set 'svhn'"),
        (["fit", "toy:iris", "--label-column", "last", "-o", "x.somlab"], "comes with its labels"),
        (["fit", "uci:breast:x1_k1:extra", "-o", "x.somlab"], "use uci:NAME or uci:NAME:FOLD"),
        (["fit", "toy:iris", "--device", "gpu", "-o", "x.somlab"], "device must be"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_nan_and_corrupt_model_and_wrong_width(tmp_path, capsys, csv_file):
    bad = tmp_path / "nan.csv"
    bad.write_text("a,b\n1,2\nnan,3\n")
    code, _, err = run(capsys, "fit", str(bad), "-o", str(tmp_path / "m"))
    assert code == 2 and "NaN" in err
    corrupt = tmp_path / "c.somlab"
    corrupt.write_bytes(b"\x00" * 40)
    code, _, err = run(capsys, "predict", str(corrupt), str(csv_file))
    assert code == 2 and "somlab model" in err
    model = tmp_path / "m.somlab"
    run(capsys, "fit", str(csv_file), "-o", str(model), "--quiet")  # 4 columns, no labels
    code, _, err = run(capsys, "predict", str(model), str(csv_file), "--label-column", "last")
    assert code == 2 and "features" in err


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "toy:iris", "-o", "m", "--topology", "triangular"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_mentions_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("fit", "predict", "evaluate", "plot", "datasets", "demo"):
        assert cmd in out


def test_label_column_on_npy_is_an_error_not_a_feature(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((20, 5)))
    code, _, err = run(capsys, "fit", str(path), "--label-column", "last", "-o", "m.somlab")
    assert code == 2 and "does not apply to .npy" in err


def test_gpu_saved_model_runs_on_cpu_with_device(tmp_path, capsys):
    import torch

    from somlab import SOM
    from somlab.datasets import load_toy

    X, _ = load_toy("iris")
    som = SOM((3, 3), epochs=2, random_state=0).fit(X)
    expected = som.predict(X)
    path = som.set_params(device="cuda").save(tmp_path / "gpu.somlab")  # as if trained on a GPU
    if not torch.cuda.is_available():
        code, _, err = run(capsys, "predict", str(path), "toy:iris")
        assert code == 2 and "device='cpu'" in err
    code, out, _ = run(capsys, "predict", str(path), "toy:iris", "--device", "cpu", "--json")
    assert code == 0 and json.loads(out)["predictions"] == expected.tolist()


def test_evaluate_explains_ce_and_output_to_a_folder_is_refused(tmp_path, capsys):
    model = tmp_path / "iris.somlab"
    run(capsys, "fit", "toy:iris", "-o", str(model), "--grid", "3x3", "--quiet")
    code, out, _ = run(capsys, "evaluate", str(model), "toy:iris")
    assert code == 0 and "higher is better" in out
    code, _, err = run(capsys, "fit", "toy:iris", "-o", str(tmp_path), "--quiet")
    assert code == 2 and "it is a folder" in err


# ------------------------------------------------------------------ --scale (issue 18.5)


@pytest.mark.parametrize("kind", ["minmax", "standard"])
def test_fit_scale_is_stored_and_applied_by_predict_evaluate_and_plot(tmp_path, capsys, kind):
    from somlab import SOM
    from somlab.cli import fit_scaler, scale_with

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(1000, 50, 80), rng.random(80) * 1e-3, rng.random(80)])
    path = tmp_path / "d.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.17g")
    model = tmp_path / "m.somlab"
    code, out, _ = run(
        capsys, "fit", str(path), "--scale", kind, "-o", str(model), "--grid", "3x3",
        "--epochs", "3", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["scale"] == kind
    som = load(model)
    sc = som.scaler_
    Xs = scale_with(sc, X)
    if kind == "minmax":
        np.testing.assert_allclose(Xs.min(0), 0, atol=1e-12)
        np.testing.assert_allclose(Xs.max(0), 1, atol=1e-12)
    else:
        np.testing.assert_allclose(Xs.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(Xs.std(0), 1, atol=1e-9)
    assert sc == fit_scaler(kind, X)
    # the stored map is the map trained on the scaled data
    ref = SOM((3, 3), epochs=3, random_state=0).fit(Xs)
    np.testing.assert_allclose(som.weights_, ref.weights_, rtol=1e-5, atol=1e-6)
    code, out, _ = run(capsys, "predict", str(model), str(path), "--json")
    assert json.loads(out)["predictions"] == som.predict(Xs).tolist()
    code, out, _ = run(capsys, "evaluate", str(model), str(path), "--json")
    assert json.loads(out)["quantization_error"] == pytest.approx(som.quantization_error(Xs))
    png = tmp_path / "hits.png"
    code, _, err = run(capsys, "plot", str(model), "hits", "--data", str(path), "-o", str(png))
    assert code == 0 and png.is_file(), err
    code, _, err = run(capsys, "predict", str(model), "toy:iris")  # 4 features, scaler has 3
    assert code == 2 and "scaler expects 3 features" in err


def test_edited_scaler_is_refused(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from somlab import ModelFileError
    from somlab.persistence import _digest

    model = tmp_path / "m.somlab"
    run(capsys, "fit", "toy:iris", "--scale", "standard", "-o", str(model), "--quiet")
    with safe_open(str(model), framework="numpy") as f:
        meta, arrays = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    attrs = json.loads(meta["attributes"])
    for bad in ({"kind": "log"}, dict(attrs["scaler_"], scale=[0, 1, 1, 1])):
        meta["attributes"] = json.dumps(dict(attrs, scaler_=bad))
        meta["sha256"] = _digest(arrays, meta["params"], meta["attributes"])
        save_file(arrays, tmp_path / "bad.somlab", metadata=meta)
        with pytest.raises(ModelFileError, match="scaler_"):
            load(tmp_path / "bad.somlab")


def test_sweep_backend_choices_are_the_runners():
    from somlab.cli import SWEEP_BACKENDS
    from somlab.experiments.runner import BACKENDS

    assert SWEEP_BACKENDS == BACKENDS


# ------------------------------------------------------------------ 3-D grids (issue 18.5)


def test_fit_summary_of_a_3d_grid_names_all_three_sizes(tmp_path, capsys, csv_file):
    """``--grid 3x4x2``: the summary says 3x4x2 in text and [3, 4, 2] in --json (not the
    rows x cols of a 2-D map), and the model is the 3-D map."""
    model = tmp_path / "cube.somlab"
    code, out, _ = run(
        capsys, "fit", str(csv_file), "-o", str(model), "--grid", "3x4x2", "--epochs", "2",
        "--quiet",
    )  # fmt: skip
    assert code == 0 and "trained a 3x4x2 rectangular map on 60 samples" in out
    code, out, _ = run(
        capsys, "fit", str(csv_file), "-o", str(model), "--grid", "3x4x2", "--epochs", "2",
        "--toroidal", "--json",
    )  # fmt: skip
    info = json.loads(out)
    assert code == 0 and info["grid"] == [3, 4, 2] and info["n_features"] == 4
    som = load(model)
    assert som.weights_.shape == (3, 4, 2, 4) and som.toroidal
    code, out, _ = run(capsys, "fit", str(csv_file), "-o", str(model), "--grid", "3x5", "--json")
    assert code == 0 and json.loads(out)["grid"] == [3, 5]
