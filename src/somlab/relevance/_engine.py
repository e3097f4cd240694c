"""The training engine of SPEC.md §3 (Batch SS-SOM), which with batch_size=1 is §2 (SS-SOM,
LARFDSSOM): one implementation of every rule for all three maps.

Per batch there is no Python loop over samples or nodes.  The one sequential part is §3 step 5:
a node that receives several contributions (pushes, winner pulls, neighbour pulls) applies them
in rounds, round r applying every node's r-th contribution at once; the number of rounds is the
largest number of contributions one node receives in the batch (usually 1-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..core.relevance import activation_matrix, node_update
from ._nodes import NodeState

_KEY = 1 << 20  # key components (node ids, labels + 1, batch positions) stay below this


def _key(stage: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (stage * _KEY + a) * _KEY + b


@dataclass
class _Contributions:
    """Pending K4 updates of one stage: node, target row, rate, kind (0 push, 1 winner pull,
    2 neighbour pull) and key (their order inside a kind)."""

    nodes: list = field(default_factory=list)
    X: list = field(default_factory=list)
    rates: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    keys: list = field(default_factory=list)

    def add(self, nodes, X, rate, kind, keys):
        if nodes.numel() == 0:
            return
        self.nodes.append(nodes)
        self.X.append(X)
        r = rate if torch.is_tensor(rate) else torch.full((nodes.numel(),), float(rate))
        self.rates.append(r.to(X.dtype).to(X.device))
        self.kinds.append(torch.full_like(nodes, kind))
        self.keys.append(keys)


@dataclass
class _Candidates:
    """Pending insertions: position, class, sort activation and key."""

    X: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    act: list = field(default_factory=list)
    keys: list = field(default_factory=list)

    def add(self, X, classes, act, keys):
        if X.shape[0]:
            self.X.append(X)
            self.classes.append(classes)
            self.act.append(act)
            self.keys.append(keys)


class _SampleStream:
    """Sample order from one CPU generator: a fresh permutation (or N draws with replacement)
    each time the current one is used up."""

    def __init__(self, n: int, gen: torch.Generator, replacement: bool, device):
        self.n, self.gen, self.replacement, self.device = n, gen, replacement, device
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def _refill(self):
        if self.replacement:
            self.order = torch.randint(0, self.n, (self.n,), generator=self.gen)
        else:
            self.order = torch.randperm(self.n, generator=self.gen)
        self.pos = 0

    def take(self, size: int) -> torch.Tensor:
        parts = []
        while size > 0:
            if self.pos >= self.order.numel():
                self._refill()
            chunk = self.order[self.pos : self.pos + size]
            self.pos += chunk.numel()
            size -= chunk.numel()
            parts.append(chunk)
        return torch.cat(parts).to(self.device)

    def remaining_in_pass(self) -> int:
        return self.order.numel() - self.pos


class Engine:
    """Trains one map on ``X [N, m]`` with labels ``y [N]`` (class indices, −1 unlabelled).

    ``p`` is the dict of effective parameters (see ``RelevanceMapBase._effective``).
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, p: dict, gen: torch.Generator):
        self.X, self.y, self.p, self.gen = X, y, p, gen
        self.N, self.m = X.shape
        self.B = max(1, int(p.get("batch_size", 1)))
        self.max_nodes = int(p["max_nodes"])
        self.state = NodeState(self.max_nodes, self.m, X.dtype, X.device)
        self.t = 0
        self.at = float(p["at"])
        self.eb, self.en, self.epush = float(p["eb"]), p["e_n"], p["e_push"]
        self.beta, self.s, self.minwd = float(p["beta"]), float(p["s"]), float(p["minwd"])
        self.age = p["age_wins_samples"]
        self.unit_batch = p["count_unit"] == "batch"
        self.history = {"n_nodes": [], "removed": 0, "inserted": 0, "windows": 0}

    # ------------------------------------------------------------------ small helpers
    def _act(self, X):
        st = self.state
        return activation_matrix(X, st.C[: st.K], st.omega[: st.K], self.p["distance"])

    def _refresh(self, rows):
        self.state.refresh_edges(rows, self.minwd, self.p["conn_metric"])

    def _refresh_all(self):
        self.state.refresh_all_edges(self.minwd, self.p["conn_metric"])

    def _count(self, n):
        """What a group of ``n`` samples adds to wins: n (per sample) or 1 (R3, per batch)."""
        return torch.ones_like(n) if self.unit_batch else n

    def _neighbour_pulls(self, contrib, winners, X, keys):
        """Neighbour pulls at e_n for every (winner, target row, key), from the current edges."""
        K = self.state.K
        if winners.numel() == 0 or self.en == 0:
            return
        adj = self.state.adj[winners, :K]  # [g, K]
        g, k = torch.nonzero(adj, as_tuple=True)
        contrib.add(k, X[g], self.en, 2, keys[g])

    def _apply(self, contrib: _Contributions):
        """§3 step 5: per node, pushes -> winner pulls -> neighbour pulls, each in key order;
        round r applies every node's r-th contribution at once (K4 only touches its node)."""
        if not contrib.nodes:
            return
        if self.p["connection_refresh"] == "always":
            self._refresh_all()
        nodes = torch.cat(contrib.nodes)
        X = torch.cat(contrib.X)
        rates = torch.cat(contrib.rates)
        kinds = torch.cat(contrib.kinds)
        keys = torch.cat(contrib.keys)
        # lexicographic order (node, kind, key) by stable sorts from the last key to the first
        order = torch.argsort(keys, stable=True)
        order = order[torch.argsort(kinds[order], stable=True)]
        order = order[torch.argsort(nodes[order], stable=True)]
        nodes, X, rates = nodes[order], X[order], rates[order]
        _, counts = torch.unique_consecutive(nodes, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(nodes.numel(), device=nodes.device) - torch.repeat_interleave(
            starts, counts
        )
        st = self.state
        for r in range(int(counts.max())):
            sel = rank == r
            node_update(st.C, st.delta, st.omega, nodes[sel], X[sel], rates[sel], self.beta, self.s)

    def _insert(self, cand: _Candidates):
        """§3 step 6: most novel first (ascending mean activation, ties by key) up to capacity."""
        if not cand.X:
            return
        X = torch.cat(cand.X)
        cls = torch.cat(cand.classes)
        act = torch.cat(cand.act)
        keys = torch.cat(cand.keys)
        order = torch.argsort(keys, stable=True)
        order = order[torch.argsort(act[order], stable=True)]
        X, cls = X[order], cls[order]
        n, K = X.shape[0], self.state.K
        if self.p["capacity"] == "all_or_nothing" and n > 1:
            take = n if K + n < self.max_nodes else 0
        else:
            take = max(0, min(n, self.max_nodes - K))
        if take == 0:
            return
        idx = self.state.insert(X[:take], cls[:take])
        self.history["inserted"] += take
        self._refresh(idx)

    def _grouped(self, keys, X, act=None):
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

    # ------------------------------------------------------------------ one batch
    def _init_map(self, X, y):
        """Empty map: one node per distinct label (ascending, unlabelled last) at its mean."""
        keys = torch.where(y < 0, torch.full_like(y, _KEY - 1), y)
        uniq, means, _, _, _ = self._grouped(keys, X)
        cls = torch.where(uniq == _KEY - 1, torch.full_like(uniq, -1), uniq)
        take = min(uniq.numel(), self.max_nodes)
        self.state.insert(means[:take], cls[:take])
        self.history["inserted"] += take
        self._refresh_all()

    def _stage_s(self, X, y):
        st = self.state
        K0 = st.K
        A = self._act(X)
        a, w = A.max(1)
        cw = st.classes[w]
        compatible = (cw == y) | (cw == -1)
        high = a >= self.at
        contrib, cand = _Contributions(), _Candidates()
        C1 = self.p.get("n_classes", 0) + 1
        # step 2: compatible, low activation -> candidates per (winner, label)
        low_c = compatible & ~high
        if low_c.any():
            k = w[low_c] * C1 + (y[low_c] + 1)
            uniq, means, _, _, ma = self._grouped(k, X[low_c], a[low_c])
            cand.add(means, uniq % C1 - 1, ma, _key(2, uniq // C1, uniq % C1))
        # step 3: compatible, high activation -> groups (winner j, label l)
        hi_c = compatible & high
        if hi_c.any():
            k = w[hi_c] * C1 + (y[hi_c] + 1)
            uniq, means, counts, _, _ = self._grouped(k, X[hi_c])
            j, lab = uniq // C1, uniq % C1 - 1
            first = torch.ones_like(j, dtype=torch.bool)
            first[1:] = j[1:] != j[:-1]  # the smallest label of each winner stays with j
            target = j.clone()
            keep = torch.ones_like(first)
            clones = torch.nonzero(~first).squeeze(1)
            if clones.numel():
                room = self.max_nodes - st.K
                if self.p["capacity"] == "all_or_nothing":
                    # per winner group: n > 1 needs K + n < max_nodes, n = 1 needs K < max
                    ok = torch.zeros_like(first)
                    cj = j[clones]
                    uj, cnt = torch.unique_consecutive(cj, return_counts=True)
                    used = 0
                    pos = 0
                    # compat flag only: a loop over the winners that need clones
                    for n_c in cnt.tolist():
                        fits = (
                            (st.K + used + n_c < self.max_nodes)
                            if n_c > 1
                            else (st.K + used < self.max_nodes)
                        )
                        if fits:
                            ok[clones[pos : pos + n_c]] = True
                            used += n_c
                        pos += n_c
                    made = clones[ok[clones]]
                else:
                    made = clones[: max(0, room)]
                keep[clones] = False
                keep[made] = True
                if made.numel():
                    new = st.clone_nodes(j[made], lab[made], self.p["clone_wins"] == "copy")
                    target[made] = new
                    self.history["inserted"] += made.numel()
            j, lab, target, means, counts = (
                j[keep],
                lab[keep],
                target[keep],
                means[keep],
                counts[keep],
            )
            st.classes[target] = lab
            st.wins.index_add_(0, target, self._count(counts))
            self._refresh(target)
            keys = _key(3, j, lab + 1)
            contrib.add(target, means, self.eb, 1, keys)
            self._neighbour_pulls(contrib, target, means, keys)
        # step 4: conflicts (winner labelled with another class)
        conflict = ~compatible
        if conflict.any():
            Ac, yc, wc = A[conflict], y[conflict], w[conflict]
            cls_now = st.classes[:K0]
            ok = (Ac >= self.at) & (
                (cls_now.unsqueeze(0) == yc.unsqueeze(1)) | (cls_now == -1).unsqueeze(0)
            )
            best_a, s2 = torch.where(ok, Ac, torch.full_like(Ac, -torch.inf)).max(1)
            found = torch.isfinite(best_a)
            none = ~found
            if none.any():
                k = wc[none] * C1 + (yc[none] + 1)
                uniq, means, _, _, ma = self._grouped(k, X[conflict][none], a[conflict][none])
                cand.add(means, uniq % C1 - 1, ma, _key(2, uniq // C1, uniq % C1))
            if found.any():
                Xf, wf, sf = X[conflict][found], wc[found], s2[found]
                if self.p["conflict_update"] == "per_sample":
                    pos = torch.nonzero(conflict).squeeze(1)[found]
                    uniq, means, counts = pos, Xf, torch.ones_like(pos)
                    ws, ss = wf, sf
                else:
                    k = wf * _KEY + sf
                    uniq, means, counts, _, _ = self._grouped(k, Xf)
                    ws, ss = uniq // _KEY, uniq % _KEY
                keys = (
                    _key(4, ws, ss)
                    if self.p["conflict_update"] != "per_sample"
                    else _key(4, torch.zeros_like(uniq), uniq)
                )
                contrib.add(ws, means, -self.epush, 0, keys)
                st.wins.index_add_(0, ss, self._count(counts))
                contrib.add(ss, means, self.eb, 1, keys)
                self._neighbour_pulls(contrib, ss, means, keys)
        self._apply(contrib)
        self._insert(cand)

    def _stage_u(self, X):
        st = self.state
        A = self._act(X)
        a, w = A.max(1)
        contrib, cand = _Contributions(), _Candidates()
        if self.p["unsup_threshold"] == "mean":
            uniq, means, counts, _, _ = self._grouped(w, X)
            am = activation_matrix(means, st.C[: st.K], st.omega[: st.K], self.p["distance"])
            a_u = am.gather(1, uniq.unsqueeze(1)).squeeze(1)  # each mean against its winner
            low_g = a_u < self.at
            cand.add(
                means[low_g],
                torch.full_like(uniq[low_g], -1),
                a_u[low_g],
                _key(5, uniq[low_g], torch.zeros_like(uniq[low_g])),
            )
            hi = ~low_g
            j, means, counts = uniq[hi], means[hi], counts[hi]
        else:
            low = a < self.at
            if low.any():
                if self.p["count_all_wins"]:
                    st.wins.index_add_(0, w[low], torch.ones_like(w[low]))
                if self.p["unsup_insert"] == "per_sample":
                    pos = torch.nonzero(low).squeeze(1)
                    cand.add(
                        X[low],
                        torch.full_like(pos, -1),
                        a[low],
                        _key(5, torch.zeros_like(pos), pos),
                    )
                else:
                    uniq, gm, _, _, ma = self._grouped(w[low], X[low], a[low])
                    cand.add(
                        gm, torch.full_like(uniq, -1), ma, _key(5, uniq, torch.zeros_like(uniq))
                    )
            high = ~low
            if high.any():
                j, means, counts, _, _ = self._grouped(w[high], X[high])
            else:
                j = torch.empty(0, dtype=torch.long, device=X.device)
        if j.numel():
            st.wins.index_add_(0, j, self._count(counts))
            keys = _key(6, j, torch.zeros_like(j))
            contrib.add(j, means, self.eb, 1, keys)
            self._neighbour_pulls(contrib, j, means, keys)
        self._apply(contrib)
        self._insert(cand)

    def _window(self, n_samples: int) -> bool:
        """End of batch: advance the window; at its end remove nodes with wins < lp t."""
        self.t += 1 if self.unit_batch else n_samples
        if self.t < self.age:
            return False
        st = self.state
        K = st.K
        wins = st.wins[:K]
        keep = wins.to(torch.float64) >= float(self.p["lp"]) * self.t
        if K and not keep.any():  # Choice (SPEC §2): keep the node with most wins
            keep[int(torch.argmax(wins))] = True
        if not keep.all():
            self.history["removed"] += int((~keep).sum())
            st.keep(keep)
        st.wins[: st.K] = 0
        self.t = 0
        self.history["windows"] += 1
        self._refresh_all()
        return True

    def step(self, idx: torch.Tensor) -> bool:
        """Present one batch of sample indices; returns True when a window closed."""
        X, y = self.X[idx], self.y[idx]
        if self.state.K == 0:
            self._init_map(X, y)
        else:
            lab = y >= 0
            if lab.any():
                self._stage_s(X[lab], y[lab])
            if (~lab).any():
                self._stage_u(X[~lab])
        return self._window(idx.numel())

    # ------------------------------------------------------------------ schedule
    def run(self) -> NodeState:
        p = self.p
        stream = _SampleStream(self.N, self.gen, p["sampling"] == "replacement", self.X.device)
        if p["init"] == "random":
            x0 = torch.rand(self.m, generator=self.gen, dtype=torch.float32).to(self.X)
            self.state.insert(x0.unsqueeze(0), torch.tensor([-1], device=self.X.device))
        for _ in range(int(p["epochs"])):
            left = self.N
            while left > 0:
                b = min(self.B, left)
                self.step(stream.take(b))
                left -= b
            self.history["n_nodes"].append(self.state.K)
        conv = p["convergence"]
        if conv == "cpp":
            if self.t > 0:  # (a) finish the open window
                while not self.step(stream.take(self.B)):
                    pass
            self.max_nodes = self.state.K  # (b) freeze insertion
            left = self.age  # (c) exactly age_wins more samples, ending with a removal
            while left > 0:
                b = min(self.B, left)
                self.step(stream.take(b))
                left -= b
        elif conv == "reference":  # R8: one extra pass, capped at 2 age_wins batches
            n_batches = min(math.ceil(self.N / self.B), 2 * self.age)
            for _ in range(n_batches):
                if self.step(stream.take(self.B)):
                    self.max_nodes = self.state.K
        self.history["n_nodes"].append(self.state.K)
        return self.state
