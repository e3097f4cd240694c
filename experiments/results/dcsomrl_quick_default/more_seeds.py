"""More seeds of ``somlab reproduce dcsomrl --quick`` (default preset), one JSON line per seed.

Same config as ``--quick`` (5,000 training images, 20 pretraining epochs, 50 joint epochs capped
by max_iter=1000, default preset, CPU), same ``run_seed`` as the CLI, but without refitting the
paper preset (not needed for the k-means comparison) and for the seeds given:

    python more_seeds.py OUT.jsonl mnist:1 mnist:2 fmnist:1 fmnist:2
"""

import json
import sys
from dataclasses import replace

from somlab.experiments.dcsomrl import QUICK, DCSOMRLConfig, load_data, run_seed


def main(out, jobs):
    data = {}
    for job in jobs:
        dataset, seed = job.split(":")
        cfg = DCSOMRLConfig(dataset=dataset, quick=True, **QUICK)
        cfg = replace(cfg, with_paper_preset=False).validated()
        if dataset not in data:
            data[dataset] = load_data(cfg)
        rec = run_seed(cfg, data[dataset], int(seed))
        rec.pop("history", None)
        rec["dataset"] = dataset
        with open(out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(dataset, seed, rec["n_prototypes"], rec["dcsomrl"], rec["kmeans_pixels"],
              rec["kmeans_pretrained_codes"], f"{rec['fit_s']:.0f}s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
