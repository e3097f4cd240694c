"""Train a hexagonal SOM on iris, look at it, save it, and classify with Batch SS-SOM.

python examples/quickstart.py          # writes PNGs to examples_out/
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from somlab import SOM, BatchSSSOM, load, plotting  # noqa: E402
from somlab.datasets import load_toy, load_uci  # noqa: E402

out = Path("examples_out")
out.mkdir(exist_ok=True)

X, y = load_toy("iris")
som = SOM((10, 10), topology="hexagonal", epochs=20, random_state=0).fit(X)
print(f"QE {som.quantization_error_:.4f}  TE {som.topographic_error_:.4f}")
plotting.plot_umatrix(som, path=out / "umatrix.png")
plotting.plot_markers(som, X, y, path=out / "markers.png")
som.save(out / "iris.somlab")
assert (load(out / "iris.somlab").predict(X) == som.predict(X)).all()

b = load_uci("glass", fold="x1_k1", labelled=0.25)  # 25 % of the training labels, -1 elsewhere
model = BatchSSSOM(random_state=0).fit(b.X_train, b.y_train)
print(
    f"Batch SS-SOM on glass: accuracy {model.score(b.X_test, b.y_test):.3f}, {model.n_nodes_} nodes"
)
plotting.plot_relevances(model, path=out / "relevances.png")
