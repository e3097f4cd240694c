"""Tables of selection_v2_<split>.jsonl: per candidate and data set, per seed and mean ± sd.

python selection_v2_summary.py DIR val          # what the choice reads
python selection_v2_summary.py DIR test NAME..  # after the choice: the chosen rule(s) only
"""

import json
import statistics
import sys
from pathlib import Path

SCORES = ("dcsomrl", "kmeans_pixels", "kmeans_pretrained_codes")


def rows(records):
    by = {}
    for r in records:
        by.setdefault((r["dataset"], r["candidate"]), {})[r["seed"]] = r  # last record wins
    return by


def margin(r, m):
    return r["dcsomrl"][m] - max(r["kmeans_pixels"][m], r["kmeans_pretrained_codes"][m])


def ms(vals):
    vals = list(vals)
    s = f"{statistics.fmean(vals):.3f}"
    return s + (f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else "")


def main(d, split, names):
    recs = [
        json.loads(x)
        for x in (Path(d) / f"selection_v2_{split}.jsonl").read_text().split("\n")
        if x
    ]
    head = "| data | candidate | seed | k | DC-SOMRL | k-means px | k-means codes | margin purity"
    out = [f"### {split}", "", head + " | margin NMI |", "|---|---|---|---|---|---|---|---|---|"]
    for (ds, name), seeds in sorted(rows(recs).items()):
        if names and name not in names:
            continue
        rs = [seeds[s] for s in sorted(seeds)]
        for r in rs:
            cells = [f"{r[k]['purity']:.3f} / {r[k]['nmi']:.3f}" for k in SCORES]
            out.append(f"| {ds} | {name} | {r['seed']} | {r['n_prototypes']} | " + " | ".join(cells)
                       + f" | {margin(r, 'purity'):+.3f} | {margin(r, 'nmi'):+.3f} |")  # fmt: skip
        if len(rs) > 1:
            cells = [
                f"{ms(r[k]['purity'] for r in rs)} / {ms(r[k]['nmi'] for r in rs)}" for k in SCORES
            ]
            mean_margin = {
                m: statistics.fmean(r["dcsomrl"][m] for r in rs)
                - max(statistics.fmean(r[k][m] for r in rs) for k in SCORES[1:])
                for m in ("purity", "nmi")
            }
            out.append(f"| {ds} | {name} | mean | {ms(r['n_prototypes'] for r in rs)} | "
                       + " | ".join(cells) + f" | {mean_margin['purity']:+.3f} (of means) | "
                       f"{mean_margin['nmi']:+.3f} (of means) |")  # fmt: skip
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
