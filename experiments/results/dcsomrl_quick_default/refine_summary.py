"""Tables of refine_<split>.jsonl (refine_posthoc.py) and the choice of the refinement.

    python refine_summary.py DIR val           # what the choice reads
    python refine_summary.py DIR test VARIANT  # after the choice: the chosen variant only

Rule (fixed before the validation scores were read): per variant, the margins of the means over
seeds 0-2 of validation purity and NMI over the better k-means mean (pixels, pretrained codes),
on MNIST and Fashion-MNIST; the worst of those four; the largest wins (ties: fewer iterations).
"""

import json
import statistics
import sys
from pathlib import Path

KM = ("kmeans_pixels", "kmeans_pretrained_codes")


def ms(vals):
    vals = list(vals)
    return f"{statistics.fmean(vals):.3f}" + (
        f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
    )


def main(d, split, names):
    recs = [
        json.loads(x) for x in (Path(d) / f"refine_{split}.jsonl").read_text().splitlines() if x
    ]
    by = {}
    for r in recs:
        by.setdefault(r["variant"], {}).setdefault(r["dataset"], []).append(r)
    out = ["| variant | data | seeds | k | DC-SOMRL purity / NMI | k-means px | k-means codes | "
           "margin purity (of means) | margin NMI (of means) | per-seed purity margins |",
           "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    worst = {}
    for v, per_ds in by.items():
        if names and v not in names:
            continue
        for ds in sorted(per_ds):
            rs = sorted(per_ds[ds], key=lambda r: r["seed"])
            mm = {m: statistics.fmean(r["dcsomrl"][m] for r in rs)
                  - max(statistics.fmean(r[k][m] for r in rs) for k in KM)
                  for m in ("purity", "nmi")}  # fmt: skip
            per_seed = ", ".join(
                f"{r['dcsomrl']['purity'] - max(r[k]['purity'] for k in KM):+.3f}" for r in rs
            )
            cells = [f"{ms(r[k]['purity'] for r in rs)} / {ms(r[k]['nmi'] for r in rs)}"
                     for k in ("dcsomrl", *KM)]  # fmt: skip
            out.append(f"| {v} | {ds} | {','.join(str(r['seed']) for r in rs)} | "
                       f"{ms(r['n_prototypes'] for r in rs)} | " + " | ".join(cells)
                       + f" | {mm['purity']:+.3f} | {mm['nmi']:+.3f} | {per_seed} |")  # fmt: skip
            worst.setdefault(v, []).extend(mm.values())
    print("\n".join(out))
    n_iter = {v: per_ds[next(iter(per_ds))][0]["n_iter"] for v, per_ds in by.items()}
    ranked = sorted(worst, key=lambda v: (-min(worst[v]), n_iter[v]))
    print("\nworst margin of means (both data sets, purity and NMI):")
    for v in ranked:
        print(f"  {v}: {min(worst[v]):+.4f}")
    if split == "val":
        print("chosen:", ranked[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
