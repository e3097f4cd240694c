"""The torch engine: SPEC.md §3 (Batch SS-SOM) for K maps at once, which with ``batch_size=1`` is
§2 (SS-SOM, LARFDSSOM).  One implementation of every rule for all three maps and any device; a
single-map fit is this engine at K = 1 (:func:`somlab.relevance._fit.fit_relevance_map`).

Map ``k`` owns the node slots ``k * cap .. k * cap + cap - 1`` of one set of flat node tensors
(``C``, ``delta``, ``omega`` ``[K * cap, m]``; ``wins``, ``classes`` ``[K * cap]``) and one block
``adj[k]`` of a ``[K, cap, cap]`` adjacency; ``n_nodes[k]`` of its slots are active.  A batch
step gathers every map's batch into one set of rows tagged with their map, and each rule runs
once for all maps on those rows: node ids are global (``map * cap + slot``), so the grouping
keys, sort orders and update rounds mean the same map by map, and insertions, clones and
removals are per-map ranks and compactions.  Only the columns up to the largest active map are
touched.

Per batch there is no Python loop over samples or nodes.  The one sequential part is §3 step 5:
a node that receives several contributions (pushes, winner pulls, neighbour pulls) applies them
in rounds, round r applying every node's r-th contribution at once; the number of rounds is the
largest number of contributions one node receives in the batch (usually 1-3).

The hyper-parameters of SPEC.md §3 may differ from map to map (``at``, ``lp``, ``beta``,
``age_wins``, ``eb``, ``en``, ``s``, ``minwd``, ``epochs``, ``epush``, ``max_nodes``, the seed);
the batch size, data and rule flags are shared.  Each map follows the convergence phases on its
own and drops out of the batch when it is done.  Map ``k`` is the map this engine trains alone
(K = 1) with map ``k``'s parameters and generator, node for node on a CPU, floats to rounding
(tests/test_relevance_ensemble.py; on CUDA see BatchSSSOMEnsemble).
"""

from __future__ import annotations

import math

import torch

from ..core.relevance import activation_rows, node_update

#: SPEC §5 flag values this engine implements (all of them), checked against FLAGS in _fit.
SUPPORTED = {
    "distance": ("weighted", "weighted_sq", "reference"),
    "conn_metric": ("euclid", "sq"),
    "count_unit": ("sample", "batch"),
    "unsup_insert": ("group", "per_sample"),
    "capacity": ("greedy", "all_or_nothing"),
    "conflict_update": ("grouped", "per_sample"),
    "labelled_conflict": ("push", "clone"),
    "connection_refresh": ("events", "always"),
    "convergence": ("cpp", "reference", "none"),
    "label_fallback": ("any", "within_at"),
    "init": ("first_sample", "random"),
    "sampling": ("permutation", "replacement"),
    "unsup_threshold": ("sample", "mean"),
    "clone_wins": ("zero", "copy"),
}

_KEY = 1 << 20  # key components (node ids, labels + 1, batch positions) stay below this


def _key(stage: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (stage * _KEY + a) * _KEY + b


def _lexsort(*keys: torch.Tensor) -> torch.Tensor:
    """Indices that sort by ``keys[0]``, ties by ``keys[1]``, ... (stable sorts, last key first)."""
    order = torch.argsort(keys[-1], stable=True)
    for k in reversed(keys[:-1]):
        order = order[torch.argsort(k[order], stable=True)]
    return order


def grouped(keys, X, act=None):
    """K6: distinct keys (ascending), group means, counts, inverse and mean activation."""
    uniq, inv, counts = torch.unique(keys, sorted=True, return_inverse=True, return_counts=True)
    g = uniq.numel()
    sums = torch.zeros(g, X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, inv, X)
    means = sums / counts.unsqueeze(1).to(X.dtype)
    mean_act = None
    if act is not None:
        mean_act = torch.zeros(g, dtype=act.dtype, device=act.device).index_add_(0, inv, act)
        mean_act = mean_act / counts.to(act.dtype)
    return uniq, means, counts, inv, mean_act


def rank_in_group(group: torch.Tensor) -> torch.Tensor:
    """Position of each entry among the entries of its group; ``group`` must be sorted."""
    _, counts = torch.unique_consecutive(group, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(group.numel(), device=group.device) - torch.repeat_interleave(
        starts, counts
    )


class _Pending:
    """Rows of pending work, gathered stage by stage as tuples of parallel columns and
    concatenated once (:meth:`columns`)."""

    def __init__(self):
        self.parts: list = []

    def __bool__(self) -> bool:
        return bool(self.parts)

    def columns(self) -> list:
        return [torch.cat(c) for c in zip(*self.parts)]


class _Contributions(_Pending):
    """Pending K4 updates of one stage: node, target row, rate, kind (0 push, 1 winner pull,
    2 neighbour pull) and key (their order inside a kind)."""

    def add(self, nodes, X, rates, kind, keys):
        if nodes.numel():
            self.parts.append((nodes, X, rates, torch.full_like(nodes, kind), keys))


class _Candidates(_Pending):
    """Pending insertions: position, class, sort activation, key and call.

    A call is what ``capacity="all_or_nothing"`` inserts whole or not at all (R5): the step-2
    candidates of one winner, the step-4 candidates of one winner, or all U1 candidates.
    """

    def add(self, X, classes, act, keys, calls):
        if X.shape[0]:
            self.parts.append((X, classes, act, keys, calls))


def keeps_node(j, lab, cj, clone_mode: bool) -> torch.Tensor:
    """§3 step 3 for the (winner ``j``, label ``lab``) groups, sorted by winner then label, with
    ``cj`` the winners' classes: which groups update their winner itself (the rest need
    clones).  The winner keeps its own label (clone mode; its first group when unlabelled) or
    takes its smallest label."""
    first = torch.ones_like(j, dtype=torch.bool)
    first[1:] = j[1:] != j[:-1]
    return torch.where(cj == -1, first, lab == cj) if clone_mode else first


def apply_rounds(C, delta, omega, contrib: _Contributions, rule) -> None:
    """§3 step 5: per node, pushes -> winner pulls -> neighbour pulls, each in key order;
    round r applies every node's r-th contribution at once (K4 only touches its node).
    ``rule(nodes)`` gives K4's ``(beta, s)`` for the nodes of a round (floats or per node)."""
    if not contrib:
        return
    nodes, X, rates, kinds, keys = contrib.columns()
    order = _lexsort(nodes, kinds, keys)
    nodes, X, rates = nodes[order], X[order], rates[order]
    rank = rank_in_group(nodes)
    for r in range(int(rank.max()) + 1):
        sel = rank == r
        beta, s = rule(nodes[sel])
        node_update(C, delta, omega, nodes[sel], X[sel], rates[sel], beta, s)


_ROW_BUDGET = 1 << 24  # elements of one [rows, nodes, features] block of the activations

# training phases of one map (SPEC.md §2 convergence, map by map)
_TRAIN, _FINISH, _FROZEN, _EXTRA, _DONE = range(5)


class MultiEngine:
    """Trains K maps on ``X [N, m]`` with labels ``y [N]``; ``params`` holds one effective
    parameter dict per map (``RelevanceMapBase._effective``), ``gens`` one generator per map."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, params: list, gens: list):
        self.X, self.y = X, y
        self.N, self.m = X.shape
        self.params = params
        p = params[0]
        self.p = p  # the shared flags
        self.n_maps = K = len(params)
        self.B = max(1, int(p["batch_size"]))
        self.cap = cap = max(int(q["max_nodes"]) for q in params)
        self.span = 2 * cap  # a call id is map * span + the map's own call id (< 2 cap)
        if K * cap >= _KEY or K * self.B >= _KEY:  # node ids and row positions enter sort keys
            raise ValueError(
                f"{K} maps x {cap} nodes or x {self.B} rows per batch exceed the engine's "
                f"{_KEY - 1} slots; train fewer maps at once"
            )
        dev, dt = X.device, X.dtype
        self.dev = dev
        f32 = dict(dtype=dt, device=dev)
        self.C = torch.zeros(K * cap, self.m, **f32)
        self.delta = torch.zeros(K * cap, self.m, **f32)
        self.omega = torch.ones(K * cap, self.m, **f32)
        self.wins = torch.zeros(K * cap, dtype=torch.int64, device=dev)
        self.classes = torch.full((K * cap,), -1, dtype=torch.int64, device=dev)
        self.adj = torch.zeros(K, cap, cap, dtype=torch.bool, device=dev)
        self.n_nodes = torch.zeros(K, dtype=torch.int64, device=dev)
        self.max_nodes = torch.tensor([int(q["max_nodes"]) for q in params], device=dev)
        # rates are rounded once to float32, as the oracles' Python floats are when they
        # meet a float32 map; beta enters node_update in float64 and lp * t is formed in
        # float64, as Python floats are
        self.at = torch.tensor([float(q["at"]) for q in params], **f32)
        self.eb = torch.tensor([float(q["eb"]) for q in params], **f32)
        self.e_n = torch.tensor([float(q["e_n"]) for q in params], **f32)
        self.e_push = torch.tensor([float(q["e_push"]) for q in params], **f32)
        self.s = torch.tensor([float(q["s"]) for q in params], **f32)
        self.minwd = torch.tensor([float(q["minwd"]) for q in params], **f32)
        self.beta = torch.tensor(
            [float(q["beta"]) for q in params], dtype=torch.float64, device=dev
        )
        self.lp = torch.tensor([float(q["lp"]) for q in params], dtype=torch.float64, device=dev)
        self.age = torch.tensor([int(q["age_wins_samples"]) for q in params], device=dev)
        self.t = torch.zeros(K, dtype=torch.int64, device=dev)
        self.unit_batch = p["count_unit"] == "batch"
        self.gens = gens
        self.history = [
            {"n_nodes": [], "removed": 0, "inserted": 0, "windows": 0, "presented": 0}
            for _ in range(K)
        ]
        self._counts = {
            k: torch.zeros(K, dtype=torch.int64, device=dev)
            for k in ("removed", "inserted", "windows", "presented")
        }

    # ------------------------------------------------------------------ small helpers
    def _map(self, g):
        return torch.div(g, self.cap, rounding_mode="floor")

    def _kmax(self, maps=None) -> int:
        """Node columns to touch: the most active nodes among ``maps`` (default: all maps), so
        that maps already done or small do not widen every block."""
        n = self.n_nodes if maps is None or maps.numel() == 0 else self.n_nodes[maps]
        return max(1, int(n.max()))

    def _act(self, X, kk, n_valid):
        """Activations of rows ``X [R, m]`` (map ``kk [R]``) on the first ``n_valid[kk]`` nodes of
        their map, ``[R, kmax]``; other slots are -inf.  Chunked over rows."""
        kmax = self._kmax(kk)
        C3 = self.C.view(self.n_maps, self.cap, self.m)[:, :kmax]
        O3 = self.omega.view(self.n_maps, self.cap, self.m)[:, :kmax]
        out = torch.empty(X.shape[0], kmax, dtype=X.dtype, device=X.device)
        step = max(1, _ROW_BUDGET // (kmax * self.m))
        for s in range(0, X.shape[0], step):
            k = kk[s : s + step]
            out[s : s + step] = activation_rows(X[s : s + step], C3[k], O3[k], self.p["distance"])
        slot = torch.arange(kmax, device=X.device)
        return out.masked_fill_(slot.unsqueeze(0) >= n_valid[kk].unsqueeze(1), -torch.inf)

    def _count(self, n):
        return torch.ones_like(n) if self.unit_batch else n

    def _per_map_count(self, maps):
        return torch.bincount(maps, minlength=self.n_maps)

    def _refresh(self, g):
        """K5 for the global nodes ``g``: their edges to the active nodes of their map."""
        if g.numel() == 0:
            return
        k, j = self._map(g), g % self.cap
        kmax = self._kmax(k)
        O3 = self.omega.view(self.n_maps, self.cap, self.m)[:, :kmax]
        step = max(1, _ROW_BUDGET // (kmax * self.m))  # bounds the [rows, kmax, m] gather
        d = torch.cat(
            [
                torch.cdist(
                    self.omega[g[s : s + step]].unsqueeze(1),
                    O3[k[s : s + step]],
                    compute_mode="donot_use_mm_for_euclid_dist",
                ).squeeze(1)
                for s in range(0, g.numel(), step)
            ]
        )
        if self.p["conn_metric"] == "sq":
            d = d * d
        conn = d < self.minwd[k].unsqueeze(1)
        cr = self.classes[g].unsqueeze(1)
        cc = self.classes.view(self.n_maps, self.cap)[k, :kmax]
        conn &= (cr == cc) | (cr == -1) | (cc == -1)
        slot = torch.arange(kmax, device=g.device).unsqueeze(0)
        conn &= slot < self.n_nodes[k].unsqueeze(1)
        conn &= slot != j.unsqueeze(1)
        self.adj[k, j, :kmax] = conn
        self.adj[k.unsqueeze(1), slot, j.unsqueeze(1)] = conn

    def _refresh_maps(self, maps):
        """K5 for every active node of the maps where ``maps [K]`` is True."""
        if not bool(maps.any()):
            return
        slots = torch.arange(self.cap, device=self.dev).unsqueeze(0)
        act = maps.unsqueeze(1) & (slots < self.n_nodes.unsqueeze(1))
        self._refresh(torch.nonzero(act.reshape(-1)).squeeze(1))

    def _pulls(self, contrib, winners, X, keys):
        k = self._map(winners)
        contrib.add(winners, X, self.eb[k], 1, keys)
        if winners.numel() == 0:
            return
        kmax = self._kmax(k)
        nb = self.adj.view(-1, self.cap)[winners, :kmax]
        g, j = torch.nonzero(nb, as_tuple=True)
        contrib.add(k[g] * self.cap + j, X[g], self.e_n[k[g]], 2, keys[g])

    def _apply(self, contrib: _Contributions):
        def rule(nodes):  # each map's own beta and s
            k = self._map(nodes)
            return self.beta[k], self.s[k]

        apply_rounds(self.C, self.delta, self.omega, contrib, rule)

    def _append(self, maps, rank):
        """Slots for new nodes of ``maps`` (each map's rank among its new nodes)."""
        return maps * self.cap + self.n_nodes[maps] + rank

    def _call(self, g, offset=0):
        """Call ids of candidates of the global nodes ``g``: the local winner (+ ``offset`` for
        step 4), per map."""
        k = self._map(g)
        return k * self.span + g % self.cap + offset

    def _fits(self, maps, sizes):
        """R5 (``capacity="all_or_nothing"``): which groups of ``sizes`` new nodes (in order,
        map by map) a map takes whole: a group of n > 1 needs K + n < max_nodes, one node
        K < max_nodes.  A loop over groups (a compatibility flag only)."""
        room_k = self.n_nodes.tolist()
        cap_k = self.max_nodes.tolist()
        ok = []
        for k, n in zip(maps.tolist(), sizes.tolist()):
            fit = (room_k[k] + n < cap_k[k]) if n > 1 else (room_k[k] < cap_k[k])
            if fit:
                room_k[k] += n
            ok.append(fit)
        return torch.tensor(ok, dtype=torch.bool, device=self.dev)

    def _insert(self, cand: _Candidates):
        """§3 step 6 per map: most novel first while the map's capacity allows (greedy), or
        each call whole or not at all (``capacity="all_or_nothing"``)."""
        if not cand:
            return
        X, cls, act, keys, calls = cand.columns()
        maps = torch.div(calls, self.span, rounding_mode="floor")
        if self.p["capacity"] == "all_or_nothing":
            order = _lexsort(calls, act, keys)
            X, cls, maps, calls = X[order], cls[order], maps[order], calls[order]
            uc, sizes = torch.unique_consecutive(calls, return_counts=True)
            ok = self._fits(torch.div(uc, self.span, rounding_mode="floor"), sizes)
            take = torch.repeat_interleave(ok, sizes)
            rank = rank_in_group(maps[take]) if bool(take.any()) else None
        else:
            order = _lexsort(maps, act, keys)
            X, cls, maps = X[order], cls[order], maps[order]
            rank = rank_in_group(maps)
            take = rank < (self.max_nodes - self.n_nodes).clamp_min(0)[maps]
            rank = rank[take]
        if not bool(take.any()):
            return
        X, cls, maps = X[take], cls[take], maps[take]
        g = self._append(maps, rank)
        self._init_nodes(g, X, cls)
        added = self._per_map_count(maps)
        self.n_nodes += added
        self._counts["inserted"] += added
        self._refresh(g)

    def _init_nodes(self, g, X, cls):
        self.C[g] = X.to(self.C.dtype)
        self.delta[g] = 0.0
        self.omega[g] = 1.0
        self.wins[g] = 0
        self.classes[g] = cls
        self._clear_edges(g)

    def _clear_edges(self, g):
        k, j = self._map(g), g % self.cap
        self.adj[k, j, :] = False
        self.adj[k, :, j] = False

    _grouped = staticmethod(grouped)

    # ------------------------------------------------------------------ one batch
    def _init_maps(self, X, y, kk):
        """Empty maps: one node per distinct label of the map's batch at its mean."""
        lab = torch.where(y < 0, torch.full_like(y, _KEY - 1), y)
        uniq, means, _, _, _ = self._grouped(kk * _KEY + lab, X)
        maps, lab = uniq // _KEY, uniq % _KEY
        cls = torch.where(lab == _KEY - 1, torch.full_like(lab, -1), lab)
        rank = rank_in_group(maps)
        take = rank < self.max_nodes[maps]
        maps, rank = maps[take], rank[take]
        self._init_nodes(self._append(maps, rank), means[take], cls[take])
        added = self._per_map_count(maps)
        self.n_nodes += added
        self._counts["inserted"] += added
        self._refresh_maps(added > 0)

    def _stage_s(self, X, y, kk):
        cap, p = self.cap, self.p
        K0 = self.n_nodes.clone()
        A = self._act(X, kk, K0)
        a, w = A.max(1)
        gw = kk * cap + w
        cw = self.classes[gw]
        clone_mode = p["labelled_conflict"] == "clone"
        compatible = (
            torch.ones_like(cw, dtype=torch.bool) if clone_mode else ((cw == y) | (cw == -1))
        )
        high = a >= self.at[kk]
        C1 = p["n_classes"] + 1
        cand = _Candidates()
        low_c = compatible & ~high
        if low_c.any():
            uniq, means, _, _, ma = self._grouped(gw[low_c] * C1 + y[low_c] + 1, X[low_c], a[low_c])
            j = uniq // C1
            cand.add(means, uniq % C1 - 1, ma, _key(2, j, uniq % C1), self._call(j))
        winners = torch.empty(0, dtype=torch.long, device=X.device)
        pull_X, pull_keys = X[:0], winners
        hi_c = compatible & high
        if hi_c.any():
            uniq, means, counts, _, _ = self._grouped(gw[hi_c] * C1 + y[hi_c] + 1, X[hi_c])
            j, lab = uniq // C1, uniq % C1 - 1
            own = keeps_node(j, lab, self.classes[j], clone_mode)
            target = j.clone()
            keep = own.clone()
            extra = torch.nonzero(~own).squeeze(1)
            if extra.numel():
                maps = self._map(j[extra])
                if p["capacity"] == "all_or_nothing":  # a winner's clones whole or none
                    uj, sizes = torch.unique_consecutive(j[extra], return_counts=True)
                    ok = torch.repeat_interleave(self._fits(self._map(uj), sizes), sizes)
                else:
                    ok = rank_in_group(maps) < (self.max_nodes - self.n_nodes).clamp_min(0)[maps]
                made, maps = extra[ok], maps[ok]
                rank = rank_in_group(maps) if made.numel() else maps
                if made.numel():
                    src, g = j[made], self._append(maps, rank)
                    self.C[g] = self.C[src]
                    self.delta[g] = self.delta[src]
                    self.omega[g] = self.omega[src]
                    self.wins[g] = self.wins[src] if p["clone_wins"] == "copy" else 0
                    self.classes[g] = lab[made]
                    self._clear_edges(g)
                    added = self._per_map_count(maps)
                    self.n_nodes += added
                    self._counts["inserted"] += added
                    target[made] = g
                    keep[made] = True
            j, lab, target, means, counts = (t[keep] for t in (j, lab, target, means, counts))
            self.classes[target] = lab
            self.wins.index_add_(0, target, self._count(counts))
            if p["connection_refresh"] != "always":
                self._refresh(target)
            winners, pull_X, pull_keys = target, means, _key(3, j, lab + 1)
        pushes = None
        conflict = ~compatible
        if conflict.any():
            Ac, yc, wc, Xc, ac = A[conflict], y[conflict], gw[conflict], X[conflict], a[conflict]
            kc = kk[conflict]
            cls_now = self.classes.view(self.n_maps, cap)[kc, : A.shape[1]]
            ok = (Ac >= self.at[kc].unsqueeze(1)) & ((cls_now == yc.unsqueeze(1)) | (cls_now == -1))
            best, s2 = torch.where(ok, Ac, torch.full_like(Ac, -torch.inf)).max(1)
            found = torch.isfinite(best)
            if (~found).any():
                nf = ~found
                uniq, means, _, _, ma = self._grouped(wc[nf] * C1 + yc[nf] + 1, Xc[nf], ac[nf])
                jn = uniq // C1
                # step-4 calls come after step-2 calls (offset by K0)
                cand.add(
                    means,
                    uniq % C1 - 1,
                    ma,
                    _key(2, jn, uniq % C1),
                    self._call(jn, K0[self._map(jn)]),
                )
            if found.any():
                Xf, wf, sf, kf = Xc[found], wc[found], s2[found], kc[found]
                uniq, means, counts, _, _ = self._grouped(wf * cap + sf, Xf)
                wu, su = uniq // cap, self._map(uniq // cap) * cap + uniq % cap
                if p["conflict_update"] == "per_sample":
                    order = _lexsort(wf * cap + sf, torch.arange(Xf.shape[0], device=X.device))
                    wu, su, means = wf[order], (kf * cap + sf)[order], Xf[order]
                    counts = torch.ones_like(wu)
                    keys = _key(4, torch.zeros_like(wu), torch.arange(wu.numel(), device=X.device))
                else:
                    keys = _key(4, wu, uniq % cap)
                self.wins.index_add_(0, su, self._count(counts))
                pushes = (wu, means, keys)
                winners = torch.cat([winners, su])
                pull_X = torch.cat([pull_X, means])
                pull_keys = torch.cat([pull_keys, keys])
        contrib = _Contributions()
        if winners.numel() and p["connection_refresh"] == "always":
            self._refresh_maps(self._per_map_count(self._map(winners)) > 0)
        if pushes is not None:
            contrib.add(pushes[0], pushes[1], -self.e_push[self._map(pushes[0])], 0, pushes[2])
        self._pulls(contrib, winners, pull_X, pull_keys)
        self._apply(contrib)
        self._insert(cand)

    def _stage_u(self, X, kk):
        cap, p = self.cap, self.p
        A = self._act(X, kk, self.n_nodes)
        a, w = A.max(1)
        gw = kk * cap + w
        cand = _Candidates()
        if p["unsup_threshold"] == "mean":
            uniq, means, counts, _, _ = self._grouped(gw, X)
            a_u = self._act(means, self._map(uniq), self.n_nodes)
            a_u = a_u.gather(1, (uniq % cap).unsqueeze(1)).squeeze(1)
            low = a_u < self.at[self._map(uniq)]
            cand.add(
                means[low],
                torch.full_like(uniq[low], -1),
                a_u[low],
                _key(5, uniq[low], torch.zeros_like(uniq[low])),
                self._map(uniq[low]) * self.span,
            )
            j, means, counts = uniq[~low], means[~low], counts[~low]
        else:
            low = a < self.at[kk]
            if low.any():
                if p["count_all_wins"]:
                    self.wins.index_add_(0, gw[low], torch.ones_like(gw[low]))
                if p["unsup_insert"] == "per_sample":
                    pos = torch.nonzero(low).squeeze(1)
                    cand.add(
                        X[low],
                        torch.full_like(pos, -1),
                        a[low],
                        _key(5, gw[low], pos),
                        kk[low] * self.span,
                    )
                else:
                    uniq, gm, _, _, ma = self._grouped(gw[low], X[low], a[low])
                    cand.add(
                        gm,
                        torch.full_like(uniq, -1),
                        ma,
                        _key(5, uniq, torch.zeros_like(uniq)),
                        self._map(uniq) * self.span,
                    )
            j = torch.zeros(0, dtype=torch.long, device=X.device)
            means, counts = X[:0], j
            if (~low).any():
                j, means, counts, _, _ = self._grouped(gw[~low], X[~low])
        contrib = _Contributions()
        if j.numel():
            if p["connection_refresh"] == "always":
                self._refresh_maps(self._per_map_count(self._map(j)) > 0)
            self.wins.index_add_(0, j, self._count(counts))
            self._pulls(contrib, j, means, _key(6, j, torch.zeros_like(j)))
        self._apply(contrib)
        self._insert(cand)

    def _window(self, n_rows):
        """End of batch for the maps that saw ``n_rows [K]`` rows (0: not in this step):
        advance each window; where it closes, remove nodes with wins < lp t and compact."""
        stepped = n_rows > 0
        self.t += torch.where(stepped, torch.ones_like(n_rows) if self.unit_batch else n_rows, 0)
        closing = stepped & (self.t >= self.age)
        if not bool(closing.any()):
            return closing
        K, cap = self.n_maps, self.cap
        slots = torch.arange(cap, device=self.dev).unsqueeze(0)
        active = slots < self.n_nodes.unsqueeze(1)
        wins = self.wins.view(K, cap)
        thr = (self.lp * self.t.to(torch.float64)).to(torch.float32)
        keep = ~(wins.to(torch.float32) < thr.unsqueeze(1)) & active
        # Choice (SPEC §2): a map that would lose every node keeps the one with most wins
        lost = closing & ~keep.any(1) & (self.n_nodes > 0)
        if bool(lost.any()):
            best = torch.where(active, wins, -1).argmax(1)
            keep[lost, best[lost]] = True
        keep = torch.where(closing.unsqueeze(1), keep, active)
        removed = (active & ~keep).sum(1)
        if bool((removed > 0).any()):
            # stable compaction: kept slots first, in their order
            order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
            flat = (torch.arange(K, device=self.dev).unsqueeze(1) * cap + order).reshape(-1)
            for name in ("C", "delta", "omega", "wins", "classes"):
                t = getattr(self, name)
                t.copy_(t[flat])
            self.adj = self.adj.gather(1, order.unsqueeze(2).expand(K, cap, cap))
            self.adj = self.adj.gather(2, order.unsqueeze(1).expand(K, cap, cap))
            self.n_nodes -= removed
            self._counts["removed"] += removed
            gone = ~(slots < self.n_nodes.unsqueeze(1))
            self.adj &= ~(gone.unsqueeze(1) | gone.unsqueeze(2))
        wins.masked_fill_(closing.unsqueeze(1), 0)
        self.t.masked_fill_(closing, 0)
        self._counts["windows"] += closing.to(torch.int64)
        self._refresh_maps(closing)
        return closing

    def step_rows(self, X, y, kk):
        """Present one batch per map: rows ``X [R, m]``, class indices ``y [R]`` and the map of
        each row ``kk [R]`` (non-decreasing).  Returns the maps whose window closed."""
        n_rows = self._per_map_count(kk)
        self._counts["presented"] += n_rows
        empty = self.n_nodes[kk] == 0
        if empty.any():
            self._init_maps(X[empty], y[empty], kk[empty])
        rest = ~empty
        lab = rest & (y >= 0)
        if lab.any():
            self._stage_s(X[lab], y[lab], kk[lab])
        unl = rest & (y < 0)
        if unl.any():
            self._stage_u(X[unl], kk[unl])
        return self._window(n_rows)

    # ------------------------------------------------------------------ schedule
    def _rows(self, idx):
        """The rows ``X [R, m]`` and labels ``y [R]`` of the sample indices ``idx [R]`` (the
        distributed engine gathers them from the ranks that hold them)."""
        return self.X[idx], self.y[idx]

    def _draw(self):
        """One draw of every map's generator: ``[K, N]`` sample orders, a permutation of the N
        samples (or N draws with replacement) that the next ceil(N/B) batches take in turn."""
        rows = []
        for gen in self.gens:  # one draw per map per pass over the data, not per batch
            if self.p["sampling"] == "replacement":
                rows.append(torch.randint(0, self.N, (self.N,), generator=gen))
            else:
                rows.append(torch.randperm(self.N, generator=gen))
        return torch.stack(rows)  # on the CPU: each step moves only its [K, B] slice

    def run(self, progress=None):
        p, K = self.p, self.n_maps
        if p["init"] == "random":
            x0 = torch.stack(
                [torch.rand(self.m, generator=g, dtype=torch.float32) for g in self.gens]
            ).to(self.X)
            g = torch.arange(K, device=self.dev) * self.cap
            self._init_nodes(g, x0, torch.full((K,), -1, dtype=torch.int64, device=self.dev))
            self.n_nodes += 1
        n_batches = math.ceil(self.N / self.B)
        train_steps = torch.tensor([int(q["epochs"]) * n_batches for q in self.params])
        conv = p["convergence"]
        extra = torch.tensor([min(n_batches, 2 * int(q["age_wins_samples"])) for q in self.params])
        phase = torch.full((K,), _TRAIN)
        extra_left = extra.clone()
        steps = 0
        order, pos = None, n_batches
        while True:
            # phase changes happen between steps
            ended = (phase == _TRAIN) & (steps >= train_steps)
            phase[ended] = {"cpp": _FINISH, "reference": _EXTRA}.get(conv, _DONE)
            if conv == "cpp":
                finish = (phase == _FINISH) & (self.t.cpu() == 0)
                if bool(finish.any()):
                    f = finish.to(self.dev)
                    self.max_nodes[f] = self.n_nodes[f]
                    phase[finish] = _FROZEN
            elif conv == "reference":
                phase[(phase == _EXTRA) & (extra_left <= 0)] = _DONE
            active = phase != _DONE
            if not bool(active.any()):
                break
            if pos == n_batches:
                order, pos = self._draw(), 0
            idx = order[active, pos * self.B : (pos + 1) * self.B].to(self.dev)
            pos += 1
            kk = torch.nonzero(active).squeeze(1).to(self.dev).repeat_interleave(idx.shape[1])
            idx = idx.reshape(-1)
            closed = self.step_rows(*self._rows(idx), kk).cpu()
            steps += 1
            train = phase == _TRAIN
            if steps % n_batches == 0 and bool(train.any()):  # an epoch ended
                nn = self.n_nodes.cpu()
                for k in torch.nonzero(train).squeeze(1).tolist():
                    self.history[k]["n_nodes"].append(int(nn[k]))
            if conv == "cpp":
                phase[(phase == _FROZEN) & closed] = _DONE
            elif conv == "reference":
                ex = phase == _EXTRA
                froze = (ex & closed).to(self.dev)
                self.max_nodes[froze] = self.n_nodes[froze]
                extra_left[ex] -= 1
            if progress is not None:
                progress(steps)
        nn = self.n_nodes.cpu()
        for k in range(K):
            h = self.history[k]
            h["n_nodes"].append(int(nn[k]))
            for name, c in self._counts.items():
                h[name] = int(c[k])
        return self

    def map_arrays(self, k: int) -> dict:
        """Map ``k``'s active nodes as numpy arrays (copies), as ``RelevanceMapBase._store_map``
        takes them: ``C``, ``delta``, ``omega`` ``[n, m]``, ``wins``, ``classes`` ``[n]``,
        ``adj`` ``[n, n]``."""
        n, cap = int(self.n_nodes[k]), self.cap
        sl = slice(k * cap, k * cap + n)
        out = {name: getattr(self, name)[sl] for name in ("C", "delta", "omega", "wins", "classes")}
        out["adj"] = self.adj[k, :n, :n]
        return {name: t.cpu().numpy().copy() for name, t in out.items()}
