"""Mean ± sample sd over seeds of ``--quick`` with the default preset: seed 0 from
``dcsomrl_<dataset>_quick.json`` (the CLI run), further seeds from ``more_seeds.jsonl``
(more_seeds.py); DC-SOMRL beside k-means on pixels and on the pretrained codes, purity and NMI,
and the per-seed margin over the better k-means.

    python seeds_summary.py > seeds_summary.md
"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("dcsomrl", "kmeans_pixels", "kmeans_pretrained_codes")


def records(dataset):
    recs = [json.loads((HERE / f"dcsomrl_{dataset}_quick.json").read_text())["runs"][0]]
    path = HERE / "more_seeds.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["dataset"] == dataset:
                recs.append(r)
    return sorted(recs, key=lambda r: r["seed"])


def ms(vals):
    sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
    return f"{statistics.fmean(vals):.3f} ± {sd:.3f}"


def main():
    for dataset, title in (("mnist", "MNIST"), ("fmnist", "Fashion-MNIST")):
        recs = records(dataset)
        seeds = ", ".join(str(r["seed"]) for r in recs)
        print(f"### {title} (seeds {seeds})\n")
        head = "| seed | prototypes | DC-SOMRL | k-means pixels | k-means codes | margin purity"
        print(head + " | margin NMI |")
        print("|---|---|---|---|---|---|---|")
        for r in recs:
            cells = [f"{r[m]['purity']:.3f} / {r[m]['nmi']:.3f}" for m in METHODS]
            mp = r["dcsomrl"]["purity"] - max(r[m]["purity"] for m in METHODS[1:])
            mn = r["dcsomrl"]["nmi"] - max(r[m]["nmi"] for m in METHODS[1:])
            print(f"| {r['seed']} | {r['n_prototypes']} | " + " | ".join(cells)
                  + f" | {mp:+.3f} | {mn:+.3f} |")  # fmt: skip
        cells = []
        for m in METHODS:
            cells.append(
                ms([r[m]["purity"] for r in recs]) + " / " + ms([r[m]["nmi"] for r in recs])
            )
        k = ms([r["n_prototypes"] for r in recs]).replace(".000", "")
        print(f"| mean ± sd | {k} | " + " | ".join(cells) + " | | |\n")


if __name__ == "__main__":
    main()
