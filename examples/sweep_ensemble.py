"""A Batch SS-SOM parameter sweep as one tensor program (BatchSSSOMEnsemble).

16 Latin-hypercube settings over the paper's Table I ranges (epochs and windows capped so that
the example takes seconds), trained together on one bundled UCI fold with 10 % of the labels;
each map is an ordinary BatchSSSOM afterwards.  On a GPU pass device="cuda": one set of kernel
launches per batch step serves all the maps.  On a CPU the compiled single-map engine is faster
per setting (benchmarks/RESULTS.md), so the loop at the end is what a CPU sweep should use.

    python examples/sweep_ensemble.py
"""

import time

import numpy as np

from somlab import BatchSSSOM, BatchSSSOMEnsemble
from somlab.datasets import load_uci
from somlab.experiments.lhs import draw_settings

data = load_uci("breast", fold="x1_k1", labelled=0.1)
settings = [
    dict(s, epochs=min(s["epochs"], 5), age_wins=min(s["age_wins"], 3))
    for s in draw_settings(16, seed=0)
]

t = time.perf_counter()
ens = BatchSSSOMEnsemble.from_settings(settings, batch_size=32).fit(data.X_train, data.y_train)
acc = ens.score(data.X_test, data.y_test)
print(f"ensemble of {ens.n_maps_} maps: {time.perf_counter() - t:.1f} s")
best = int(np.argmax(acc))
print(f"best setting #{best}: accuracy {acc[best]:.3f} with {ens.n_nodes_[best]} nodes")
print("accuracies:", np.round(acc, 3).tolist())

# the same maps one at a time (the compiled engine on a CPU): the same accuracies
t = time.perf_counter()
single = [BatchSSSOM(**p).fit(data.X_train, data.y_train) for p in ens.get_map_params()]
print(
    f"one at a time: {time.perf_counter() - t:.1f} s;",
    "same accuracies:",
    np.allclose(acc, [m.score(data.X_test, data.y_test) for m in single]),
)
