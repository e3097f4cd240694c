"""Offline search for the label-free default's choice of map and k (issue 15 point 4).

Stage 1 (``cache``): per design split and map class, fit the maps at every ``at`` of
``ATS`` with the merge off, merge each map's nodes by weighted k-means for every k in
``2..KMAX`` and store, per (map, k), the test / training CE and NMI and a set of
label-free criteria computed on the training rows only.  Stage 2 (``rules``): evaluate
selection rules (which map, which k) on that cache: every rule sees only the criteria,
the labels only score the result.

    cd experiments/results/unsup_defaults
    nice -n 10 python criteria.py cache --data design --out /tmp/crit_design.pkl
    nice -n 10 python criteria.py rules /tmp/crit_design.pkl > criteria_design.txt
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

ATS = (0.928, 0.95, 0.97, 0.98, 0.99)
KMAX = 20


def _act(X, m):
    import torch

    from somlab.core.relevance import activation_matrix

    A = activation_matrix(
        torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)),
        torch.as_tensor(m.prototypes_),
        torch.as_tensor(m.relevances_),
        m._activation_args()[0],
    )
    return A.max(1).values.numpy(), A.argmax(1).numpy()


def _xbic(X, lab):
    """X-means style BIC of a hard partition as spherical Gaussians (higher = better)."""
    n, d = X.shape
    ks = np.unique(lab)
    k = ks.size
    ll = 0.0
    sse = sum(((X[lab == c] - X[lab == c].mean(0)) ** 2).sum() for c in ks)
    var = max(sse / max(n - k, 1) / d, 1e-12)
    for c in ks:
        nc = (lab == c).sum()
        ll += nc * np.log(nc / n) - nc * d / 2 * np.log(2 * np.pi * var) - (nc - 1) * d / 2
    p = (k - 1) + k * d + 1
    return ll - p / 2 * np.log(n)


def _logw(X, lab):
    return np.log(sum(((X[lab == c] - X[lab == c].mean(0)) ** 2).sum() for c in np.unique(lab)))


def cache_split(Xtr, ytr, Xte, yte, seed=0):
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
    from sklearn.mixture import GaussianMixture
    from unsup_baselines import _no_merge

    from somlab.core.distances import sq_euclidean_np
    from somlab.metrics import clustering_error, nmi
    from somlab.relevance import LARFDSSOM, BatchSSSOM

    Xd = Xtr.astype(np.float64)
    n = Xd.shape[0]
    rng = np.random.default_rng(seed)
    sub = np.arange(n) if n <= 2000 else np.sort(rng.choice(n, 2000, replace=False))
    out = {"n": n, "classes": int(np.unique(ytr).size), "maps": {}}
    # map-independent: GMM BIC (diag) and gap reference on the rows
    t = time.process_time()
    gbic = {}
    for k in range(2, KMAX + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = GaussianMixture(k, covariance_type="diag", random_state=seed).fit(Xd)
        gbic[k] = -g.bic(Xd)
    out["gmm_bic"] = gbic
    out["gmm_bic_s"] = time.process_time() - t
    t = time.process_time()
    lo, hi = Xd.min(0), Xd.max(0)
    ref = {k: [] for k in range(1, KMAX + 1)}
    for b in range(5):
        R = rng.uniform(lo, hi, size=Xd.shape)
        for k in range(1, KMAX + 1):
            km = KMeans(k, n_init=1, random_state=b).fit(R)
            ref[k].append(np.log(km.inertia_))
    out["gap_ref"] = {k: (np.mean(v), np.std(v) * np.sqrt(1 + 1 / 5)) for k, v in ref.items()}
    out["gap_s"] = time.process_time() - t
    for label, cls in (("L", LARFDSSOM), ("B", BatchSSSOM)):
        for at in ATS:
            t = time.process_time()
            with warnings.catch_warnings(), _no_merge():
                warnings.simplefilter("ignore")
                m = cls(random_state=seed, at=at).fit(Xtr)
            fit_s = time.process_time() - t
            a_tr, w_tr = _act(Xtr, m)
            a_te, w_te = _act(Xte, m)
            noise_tr = (a_tr < 0.928) if m.filter_noise else np.zeros(n, bool)
            noise_te = (a_te < 0.928) if m.filter_noise else np.zeros(len(yte), bool)
            K = m.n_nodes_
            counts = np.bincount(w_tr, minlength=K)
            used = np.flatnonzero(counts > 0)
            P = m.prototypes_.astype(np.float64)
            rec = {"nodes": K, "used": int(used.size), "fit_s": fit_s, "k": {}}
            rec["nodes_ce"] = clustering_error(yte, np.where(noise_te, -1, w_te))
            rec["nodes_nmi"] = nmi(yte, np.where(noise_te, -1, w_te))
            t = time.process_time()
            for k in range(2, min(KMAX, used.size - 1) + 1):
                km = KMeans(k, n_init=10, random_state=seed).fit(
                    P[used], sample_weight=counts[used]
                )
                node = np.full(K, -1, dtype=np.int64)
                node[used] = km.labels_
                free = node < 0
                if free.any():
                    node[free] = node[used[sq_euclidean_np(P[free], P[used]).argmin(1)]]
                lab = node[w_tr]
                if np.unique(lab).size < 2:
                    continue
                pte = np.where(noise_te, -1, node[w_te])
                ptr = np.where(noise_tr, -1, lab)
                Pu = P[used]
                r = {
                    "ce": clustering_error(yte, pte),
                    "nmi": nmi(yte, pte),
                    "ce_tr": clustering_error(ytr, ptr),
                    "nmi_tr": nmi(ytr, ptr),
                    "kfound": int(np.unique(lab).size),
                    "sil": float(silhouette_score(Xd[sub], lab[sub])),
                    "ch": float(calinski_harabasz_score(Xd, lab)),
                    "db": -float(davies_bouldin_score(Xd, lab)),
                    "xbic": float(_xbic(Xd, lab)),
                    "logw": float(_logw(Xd, lab)),
                    "sil_p": float(silhouette_score(Pu, km.labels_))
                    if np.unique(km.labels_).size < used.size
                    else np.nan,
                    "lab": lab.astype(np.int16),
                }
                # refined: Lloyd on the rows from the merged clusters' row means, then each
                # node takes the cluster most of its rows fall in (prediction stays by node)
                cen = np.stack([Xd[lab == c].mean(0) for c in np.unique(lab)])
                rk = KMeans(cen.shape[0], init=cen, n_init=1).fit(Xd)
                tab = np.zeros((K, cen.shape[0]))
                np.add.at(tab, (w_tr, rk.labels_), 1)
                node2 = tab.argmax(1)
                if free.any():
                    node2[free] = node2[used[sq_euclidean_np(P[free], P[used]).argmin(1)]]
                lab2 = node2[w_tr]
                if np.unique(lab2).size >= 2:
                    pte2 = np.where(noise_te, -1, node2[w_te])
                    r["r_ce"] = clustering_error(yte, pte2)
                    r["r_nmi"] = nmi(yte, pte2)
                    r["r_sil"] = float(silhouette_score(Xd[sub], lab2[sub]))
                    r["r_logw"] = float(_logw(Xd, lab2))
                    r["r_xbic"] = float(_xbic(Xd, lab2))
                    r["r_kfound"] = int(np.unique(lab2).size)
                    cte = rk.predict(Xte.astype(np.float64))
                    r["c_ce"] = clustering_error(yte, cte)
                    r["c_nmi"] = nmi(yte, cte)
                    r["c_sil"] = float(silhouette_score(Xd[sub], rk.labels_[sub]))
                    r["c_logw"] = float(np.log(rk.inertia_))
                rec["k"][k] = r
            rec["merge_s"] = time.process_time() - t
            out["maps"][(label, at)] = rec
    return out


def cmd_cache(args):
    import torch
    from threadpoolctl import threadpool_limits
    from unsup_baselines import design_splits, uci_splits

    torch.set_num_threads(1)
    splits = design_splits(None, 3) if args.data == "design" else uci_splits(None, 9)
    res = []
    with threadpool_limits(1):
        for d, f, Xtr, ytr, Xte, yte in splits:
            t = time.time()
            res.append((d, f, cache_split(Xtr, ytr, Xte, yte)))
            print(d, f, f"{time.time() - t:.1f}s", flush=True)
    with open(args.out, "wb") as fh:
        pickle.dump(res, fh)


# ------------------------------------------------------------------ stage 2: rules


def _ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def choose_k(rec, crit, kmax, tol, split, var=""):
    """k of one map by criterion ``crit`` (higher = better) among 2..kmax, on the variant
    ``var`` ("": merged prototypes; "r_": refined on the rows; "c_": row k-means centroids)."""
    ks = [k for k in rec["k"] if k <= kmax and var + "sil" in rec["k"][k]]
    if not ks:
        return None, -np.inf
    S = var + "sil"
    if crit == "gap":
        ref = split["gap_ref"]
        gap = {k: ref[k][0] - rec["k"][k][var + "logw"] for k in ks}
        for k in sorted(ks):
            if k + 1 in gap and gap[k] >= gap[k + 1] - ref[k + 1][1]:
                return k, rec["k"][k][S]
        k = max(ks)
        return k, rec["k"][k][S]
    if crit == "gmm_bic":
        g = split["gmm_bic"]
        kk = max((k for k in g if k <= kmax), key=lambda k: g[k])
        k = min(ks, key=lambda q: abs(q - kk))
        return k, rec["k"][k][S]
    c = crit if crit in ("ch", "db", "sil_p") else var + crit
    sc = {k: rec["k"][k].get(c, np.nan) for k in ks}
    sc = {k: v for k, v in sc.items() if np.isfinite(v)}
    if not sc:
        return None, -np.inf
    best = max(sc.values())
    if crit in ("sil", "sil_p"):
        k = max(q for q, s in sc.items() if s >= best - tol * abs(best))
    else:
        k = max(sc, key=sc.get)
    return k, rec["k"][k][S]


def apply_rule(split, label, ats, crit, kmax, tol, pick="sil", var=""):
    """(ce, nmi, k, at) of one rule on one split and map class."""
    n = split["n"]
    km = kmax if kmax > 0 else min(KMAX, max(2, int(np.sqrt(n))))
    cand = []
    for at in ats:
        rec = split["maps"][(label, at)]
        k, s = choose_k(rec, crit, km, tol, split, var)
        if k is None:
            continue
        cand.append((at, k, s, rec))
    if not cand:
        return None
    if pick == "sil":
        at, k, s, rec = max(cand, key=lambda c: c[2])
    elif pick == "first":
        at, k, s, rec = cand[0]
    elif pick == "agree":  # the map whose partition agrees most with the others' (ARI)
        labs = [c[3]["k"][c[1]]["lab"] for c in cand]
        agr = [
            np.mean([_ari(a, b) for j, b in enumerate(labs) if j != i]) for i, a in enumerate(labs)
        ]
        at, k, s, rec = cand[int(np.argmax(agr))]
    elif pick == "medk":  # median k over the maps, then the best-silhouette map at that k
        kk = int(np.median([c[1] for c in cand]))
        cc = [
            (c[0], kk, c[3]["k"][kk][var + "sil"], c[3])
            for c in cand
            if var + "sil" in c[3]["k"].get(kk, {})
        ]
        if not cc:
            return None
        at, k, s, rec = max(cc, key=lambda c: c[2])
    r = rec["k"][k]
    return r[var + "ce"], r[var + "nmi"], k, at


def oracle(split, label, ats, mode, var=""):
    """The best CE over maps and k (``any``), over maps at k = classes (``classes``), or the
    best-silhouette map at k = classes (``classes_sil``): the ceilings of a k choice."""
    kc = split["classes"]
    cc = [
        (r, at, k)
        for at in ats
        for k, r in split["maps"][(label, at)]["k"].items()
        if var + "ce" in r and (mode == "any" or k == kc)
    ]
    if not cc:
        return None
    key = (lambda c: c[0][var + "sil"]) if mode == "classes_sil" else (lambda c: c[0][var + "ce"])
    r, at, k = max(cc, key=key)
    return r[var + "ce"], r[var + "nmi"], k, at


def cmd_rules(args):
    with open(args.cache, "rb") as fh:
        res = pickle.load(fh)
    sets = list(dict.fromkeys(d for d, _, _ in res))

    def score(fn):
        per = {d: [] for d in sets}
        for d, _, sp in res:
            for label in ("L", "B"):
                got = fn(sp, label)
                per[d].append(got if got is not None else (0.0, 0.0, 0, 0))
        ce = np.mean([np.mean([g[0] for g in v]) for v in per.values()])
        nm = np.mean([np.mean([g[1] for g in v]) for v in per.values()])
        ks = {d: np.mean([g[2] for g in v]) for d, v in per.items()}
        return ce, nm, ks

    rules = {}
    A3 = ATS[:3]
    rules["current: sil tol.10 k<=10 ats3 pick sil"] = lambda s, l: apply_rule(
        s, l, A3, "sil", 10, 0.10
    )
    for var in ("", "r_", "c_"):
        tols = (0.0, 0.05, 0.10, 0.20, 0.30) if args.full else (0.0, 0.10, 0.20)
        for tol in tols:
            for km in (10, 20, -1):
                for ats in (A3, ATS):
                    rules[f"{var}sil tol{tol:.2f} kmax{km} ats{len(ats)}"] = (
                        lambda s, l, tol=tol, km=km, ats=ats, var=var: apply_rule(
                            s, l, ats, "sil", km, tol, var=var
                        )
                    )
        crits = ("ch", "db", "xbic", "gap", "gmm_bic", "sil_p") if var == "" else ("xbic", "gap")
        for crit in crits:
            for km in (10, 20, -1):
                for ats in (A3, ATS):
                    rules[f"{var}{crit} kmax{km} ats{len(ats)}"] = (
                        lambda s, l, crit=crit, km=km, ats=ats, var=var: apply_rule(
                            s, l, ats, crit, km, 0.10, var=var
                        )
                    )
        for pick in ("first", "agree", "medk"):
            for ats in (A3, ATS):
                rules[f"{var}sil tol.10 kmax10 ats{len(ats)} pick {pick}"] = (
                    lambda s, l, pick=pick, ats=ats, var=var: apply_rule(
                        s, l, ats, "sil", 10, 0.10, pick, var=var
                    )
                )
        for ats in (A3, ATS):
            for mode in ("classes_sil", "classes", "any"):
                rules[f"{var}ORACLE {mode} ats{len(ats)}"] = (
                    lambda s, l, mode=mode, ats=ats, var=var: oracle(s, l, ats, mode, var)
                )
    rows = []
    for name, fn in rules.items():
        ce, nm, ks = score(fn)
        rows.append((ce, nm, name, ks))
    rows.sort(key=lambda r: -r[0])
    for ce, nm, name, ks in rows[: args.top or None]:
        kk = " ".join(f"{v:.1f}" for v in ks.values())
        print(f"{ce:.3f} {nm:.3f}  {name:45s} k: {kk}")
    print("sets:", " ".join(sets))


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    c = sp.add_parser("cache")
    c.add_argument("--data", choices=("design", "uci"), default="design")
    c.add_argument("--out", required=True)
    r = sp.add_parser("rules")
    r.add_argument("cache")
    r.add_argument("--full", action="store_true")
    r.add_argument("--top", type=int, default=0)
    args = ap.parse_args()
    {"cache": cmd_cache, "rules": cmd_rules}[args.cmd](args)


if __name__ == "__main__":
    main()
