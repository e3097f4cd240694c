"""The map toolkit on small public data sets: clusters of the map, classifier and regressor maps,
the map in data space and the expanded hexagonal U-matrix (the README gallery's second row).

    python examples/map_toolkit.py [--out docs/gallery]

Runs offline in well under a minute on a laptop CPU (scikit-learn's bundled data sets).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_diabetes, load_wine  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from somlab import SOM, SOMClassifier, SOMRegressor  # noqa: E402
from somlab import plotting as P  # noqa: E402


def _save(ax, path):
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples_out/map_toolkit")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    # clusters of a hexagonal map of the wine data (k by the silhouette on the samples)
    wine = load_wine()
    Xw = StandardScaler().fit_transform(wine.data)
    som = SOM((10, 12), topology="hexagonal", random_state=0).fit(Xw)
    nodes = som.cluster(X=Xw)
    k = len(np.unique(nodes))
    from sklearn.metrics import adjusted_rand_score

    ari = adjusted_rand_score(wine.target, som.predict_cluster(Xw))
    print(f"wine: {k} clusters chosen by the silhouette; ARI with the cultivars {ari:.2f}")
    ax = P.plot_clusters(som)
    ax.set_title(f"Wine: {k} clusters of a hexagonal map (agglomerative, grid connectivity)")
    _save(ax, out / "clusters_hexa.png")
    ax = P.plot_expanded_umatrix(som)
    ax.set_title("Expanded U-matrix, hexagonal map")
    _save(ax, out / "expanded_umatrix_hexa.png")

    # a classifier map: node purity (largest class share) as a per-node value
    clf = SOMClassifier(SOM((8, 8), random_state=0))
    acc = cross_val_score(clf, Xw, wine.target, cv=5).mean()
    clf.fit(Xw, wine.target)
    print(f"wine: SOMClassifier 5-fold accuracy {acc:.3f}")
    purity = clf.node_proba_.max(1)
    purity[clf.node_counts_.sum(1) == 0] = np.nan  # empty nodes in grey
    ax = P.plot_node_values(
        clf,
        purity,
        cmap="viridis",
        label="largest class share",
        vmin=0.3,
        vmax=1,
        annotate=False,
        title="Wine: node purity (SOMClassifier)",
    )
    _save(ax, out / "node_values_purity.png")

    # a regressor map: mean and spread of the target per node
    dia = load_diabetes()
    Xd = StandardScaler().fit_transform(dia.data)
    reg = SOMRegressor(SOM((8, 8), random_state=0))
    r2 = cross_val_score(reg, Xd, dia.target, cv=5).mean()
    reg.fit(Xd, dia.target)
    print(f"diabetes: SOMRegressor 5-fold R^2 {r2:.3f}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    P.plot_target_map(reg, Xd, dia.target, ax=axes[0], label="disease progression")
    P.plot_target_map(reg, Xd, dia.target, "std", ax=axes[1], label="std")
    _save(axes, out / "target_maps.png")

    # the map in data space: 2-D and 3-D
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 600)
    ring = np.c_[np.cos(t), np.sin(t)] * rng.uniform(0.6, 1.0, (600, 1))
    som2 = SOM((12, 12), random_state=0).fit(ring)
    ax = P.plot_data_space(som2, ring)
    _save(ax, out / "data_space_2d.png")
    xy = rng.uniform(-1, 1, (1500, 2))
    saddle = np.c_[xy, 0.6 * (xy[:, 0] ** 2 - xy[:, 1] ** 2) + rng.normal(0, 0.03, 1500)]
    som3 = SOM((10, 10), random_state=0).fit(saddle)
    ax = P.plot_data_space(som3, saddle, y=np.digitize(saddle[:, 2], [-0.3, -0.1, 0.1, 0.3]))
    ax.view_init(elev=28, azim=-60)
    _save(ax, out / "data_space_3d.png")


if __name__ == "__main__":
    main()
