"""Stage 2 of criteria.py for the gap-statistic variants (row k-means from the merged
clusters, "c_"): the gap, the gap with the two-group silhouette check, GMM BIC, map
agreement.  python criteria_combo.py /tmp/crit_design.pkl > criteria_combo_design.txt"""

import pickle
import sys

import numpy as np

sys.path.insert(0, "experiments/results/unsup_defaults")
import criteria as C
from sklearn.metrics import adjusted_rand_score as ari

res = pickle.load(open(sys.argv[1], "rb"))
sets = list(dict.fromkeys(d for d, _, _ in res))
A3 = C.ATS[:3]


def gapk(rec, split, kmax=10):
    ks = [k for k in rec["k"] if k <= kmax and "c_sil" in rec["k"][k]]
    if not ks:
        return None
    ref = split["gap_ref"]
    gap = {k: ref[k][0] - rec["k"][k]["c_logw"] for k in ks}
    for k in sorted(ks):
        if k + 1 in gap and gap[k] >= gap[k + 1] - ref[k + 1][1]:
            return k
    return max(ks)


def rule_combo(margin, mode):
    def f(s, l):
        cand = []
        for at in A3:
            rec = s["maps"][(l, at)]
            k = gapk(rec, s)
            if k is None:
                continue
            sil = {q: r["c_sil"] for q, r in rec["k"].items() if q <= 10 and "c_sil" in r}
            if mode == "sil2" and 2 in sil and sil[2] > sil[k] * (1 + margin):
                k = 2
            if mode == "silbest":
                kb = max(sil, key=sil.get)
                if kb < k and sil[kb] > sil[k] * (1 + margin):
                    k = kb
            cand.append((rec["k"][k]["c_sil"], k, rec))
        if not cand:
            return None
        s_, k, rec = max(cand, key=lambda c: c[0])
        return rec["k"][k]["c_ce"], rec["k"][k]["c_nmi"], k

    return f


def rule_gmm(kmax=10):
    def f(s, l):
        g = s["gmm_bic"]
        kk = max((k for k in g if k <= kmax), key=lambda k: g[k])
        cand = [
            (s["maps"][(l, at)]["k"][kk]["c_sil"], s["maps"][(l, at)]["k"][kk])
            for at in A3
            if "c_sil" in s["maps"][(l, at)]["k"].get(kk, {})
        ]
        if not cand:
            return None
        _, r = max(cand, key=lambda c: c[0])
        return r["c_ce"], r["c_nmi"], kk

    return f


def rule_stab(thr):
    def f(s, l):
        recs = [s["maps"][(l, at)] for at in A3]
        ks = [k for k in range(2, 11) if sum("c_sil" in r["k"].get(k, {}) for r in recs) >= 2]
        best = None
        for k in ks:
            labs = [r["k"][k]["lab"] for r in recs if "c_sil" in r["k"].get(k, {})]
            # c_ labels not stored; use merged labels as proxy of agreement
            a = np.mean(
                [ari(labs[i], labs[j]) for i in range(len(labs)) for j in range(i + 1, len(labs))]
            )
            if a >= thr:
                best = k
        if best is None:
            best = 2
        cand = [
            (r["k"][best]["c_sil"], r["k"][best]) for r in recs if "c_sil" in r["k"].get(best, {})
        ]
        if not cand:
            return None
        _, r = max(cand, key=lambda c: c[0])
        return r["c_ce"], r["c_nmi"], best

    return f


rules = {"c_gap": rule_combo(0, "none")}
for mg in (0.0, 0.1, 0.2, 0.3, 0.5):
    rules[f"gap+sil2 m{mg}"] = rule_combo(mg, "sil2")
    rules[f"gap+silbest m{mg}"] = rule_combo(mg, "silbest")
rules["gmm_bic"] = rule_gmm()
for t in (0.5, 0.6, 0.7, 0.8, 0.9):
    rules[f"stab{t}"] = rule_stab(t)
for n, f in rules.items():
    per = {d: [] for d in sets}
    for d, _, sp in res:
        for l in "LB":
            g = f(sp, l)
            per[d].append(g if g else (0, 0, 0))
    ce = np.mean([np.mean([g[0] for g in v]) for v in per.values()])
    nm = np.mean([np.mean([g[1] for g in v]) for v in per.values()])
    print(
        f"{ce:.3f} {nm:.3f} {n:22s}",
        " ".join(f"{np.mean([g[0] for g in v]):.2f}" for v in per.values()),
    )
