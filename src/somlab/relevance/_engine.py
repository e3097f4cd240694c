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
    """Pending insertions: position, class, sort activation, key and call.

    A call is what ``capacity="all_or_nothing"`` inserts whole or not at all (R5): the step-2
    candidates of one winner, the step-4 candidates of one winner, or all U1 candidates.
    """

    X: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    act: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def add(self, X, classes, act, keys, calls):
        if X.shape[0]:
            self.X.append(X)
            self.classes.append(classes)
            self.act.append(act)
            self.keys.append(keys)
            self.calls.append(calls)


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
    if not contrib.nodes:
        return
    nodes = torch.cat(contrib.nodes)
    X = torch.cat(contrib.X)
    rates = torch.cat(contrib.rates)
    order = _lexsort(nodes, torch.cat(contrib.kinds), torch.cat(contrib.keys))
    nodes, X, rates = nodes[order], X[order], rates[order]
    rank = rank_in_group(nodes)
    for r in range(int(rank.max()) + 1):
        sel = rank == r
        beta, s = rule(nodes[sel])
        node_update(C, delta, omega, nodes[sel], X[sel], rates[sel], beta, s)


class _BatchStream:
    """Batches from one CPU generator: each draw (a permutation of the N samples, or N draws
    with replacement) is split into ceil(N/B) batches, the last possibly smaller; the next draw
    is made when the batches of the current one are used up."""

    def __init__(self, n: int, batch: int, gen: torch.Generator, replacement: bool, device):
        self.n, self.batch, self.gen = n, batch, gen
        self.replacement, self.device = replacement, device
        self.batches: list = []

    def next(self) -> torch.Tensor:
        if not self.batches:
            if self.replacement:
                order = torch.randint(0, self.n, (self.n,), generator=self.gen)
            else:
                order = torch.randperm(self.n, generator=self.gen)
            self.batches = list(order.to(self.device).split(self.batch))
        return self.batches.pop(0)


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
        self.history = {"n_nodes": [], "removed": 0, "inserted": 0, "windows": 0, "presented": 0}

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

    def _pulls(self, contrib, winners, X, keys):
        """Winner pulls at e_b and, for each winner's current neighbours, pulls at e_n, all with
        the winner's key.  Called after every edge refresh of the stage."""
        contrib.add(winners, X, self.eb, 1, keys)
        if winners.numel() == 0:
            return
        g, k = torch.nonzero(self.state.adj[winners, : self.state.K], as_tuple=True)
        contrib.add(k, X[g], self.en, 2, keys[g])

    def _apply(self, contrib: _Contributions):
        st = self.state
        apply_rounds(st.C, st.delta, st.omega, contrib, lambda nodes: (self.beta, self.s))

    def _insert(self, cand: _Candidates):
        """§3 step 6: most novel first (ascending mean activation, ties by key) while capacity
        allows; ``capacity="all_or_nothing"`` inserts each call whole or not at all."""
        if not cand.X:
            return
        X = torch.cat(cand.X)
        cls = torch.cat(cand.classes)
        act = torch.cat(cand.act)
        keys = torch.cat(cand.keys)
        calls = torch.cat(cand.calls)
        if self.p["capacity"] == "all_or_nothing":
            order = _lexsort(calls, act, keys)
            X, cls, calls = X[order], cls[order], calls[order]
            _, sizes = torch.unique_consecutive(calls, return_counts=True)
            take = torch.zeros(X.shape[0], dtype=torch.bool, device=X.device)
            K, start = self.state.K, 0
            for n in sizes.tolist():  # compat flag only: a loop over calls (winners)
                if (K + n < self.max_nodes) if n > 1 else (K < self.max_nodes):
                    take[start : start + n] = True
                    K += n
                start += n
            X, cls = X[take], cls[take]
        else:
            order = _lexsort(act, keys)[: max(0, self.max_nodes - self.state.K)]
            X, cls = X[order], cls[order]
        if X.shape[0] == 0:
            return
        idx = self.state.insert(X, cls)
        self.history["inserted"] += X.shape[0]
        self._refresh(idx)

    _grouped = staticmethod(grouped)

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
        """Stage S of §3: labelled samples, activations on the stage-start map."""
        st = self.state
        K0 = st.K
        A = self._act(X)
        a, w = A.max(1)  # first maximum: ties go to the lowest node index
        cw = st.classes[w]
        clone_mode = self.p["labelled_conflict"] == "clone"
        compatible = (
            torch.ones_like(cw, dtype=torch.bool) if clone_mode else ((cw == y) | (cw == -1))
        )
        high = a >= self.at
        C1 = self.p["n_classes"] + 1
        cand = _Candidates()
        # step 2: compatible and novel -> one candidate per (winner, label) at the key mean
        low_c = compatible & ~high
        if low_c.any():
            uniq, means, _, _, ma = self._grouped(w[low_c] * C1 + y[low_c] + 1, X[low_c], a[low_c])
            j = uniq // C1
            cand.add(means, uniq % C1 - 1, ma, _key(2, j, uniq % C1), j)
        # step 3: compatible and active -> groups (winner j, label l); clones for extra labels
        winners = torch.empty(0, dtype=torch.long, device=X.device)
        pull_X, pull_keys = X[:0], winners
        hi_c = compatible & high
        if hi_c.any():
            uniq, means, counts, _, _ = self._grouped(w[hi_c] * C1 + y[hi_c] + 1, X[hi_c])
            j, lab = uniq // C1, uniq % C1 - 1
            own = keeps_node(j, lab, st.classes[j], clone_mode)
            target = j.clone()
            keep = own.clone()
            extra = torch.nonzero(~own).squeeze(1)
            if extra.numel():
                made = self._clone_for(j, extra)
                if made.numel():
                    target[made] = st.clone_nodes(
                        j[made], lab[made], self.p["clone_wins"] == "copy"
                    )
                    self.history["inserted"] += made.numel()
                    keep[made] = True
            j, lab, target, means, counts = (t[keep] for t in (j, lab, target, means, counts))
            st.classes[target] = lab
            st.wins.index_add_(0, target, self._count(counts))
            if self.p["connection_refresh"] != "always":
                self._refresh(target)  # after class assignment, before any update
            winners, pull_X, pull_keys = target, means, _key(3, j, lab + 1)
        # step 4: conflicts; s' among the stage-start nodes, classes read after step 3
        pushes = None
        conflict = ~compatible
        if conflict.any():
            Ac, yc, wc, Xc, ac = A[conflict], y[conflict], w[conflict], X[conflict], a[conflict]
            cls_now = st.classes[:K0]
            ok = (Ac >= self.at) & (
                (cls_now.unsqueeze(0) == yc.unsqueeze(1)) | (cls_now == -1).unsqueeze(0)
            )
            best, s2 = torch.where(ok, Ac, torch.full_like(Ac, -torch.inf)).max(1)
            found = torch.isfinite(best)
            if (~found).any():
                nf = ~found
                uniq, means, _, _, ma = self._grouped(wc[nf] * C1 + yc[nf] + 1, Xc[nf], ac[nf])
                jn = uniq // C1
                # step-4 calls come after step-2 calls in all_or_nothing (offset by K0)
                cand.add(means, uniq % C1 - 1, ma, _key(2, jn, uniq % C1), jn + K0)
            if found.any():
                Xf, wf, sf = Xc[found], wc[found], s2[found]
                uniq, means, counts, _, _ = self._grouped(wf * K0 + sf, Xf)
                wu, su = uniq // K0, uniq % K0
                if self.p["conflict_update"] == "per_sample":
                    # each sample on its own, ordered by (w, s', batch position)
                    order = _lexsort(wf * K0 + sf, torch.arange(Xf.shape[0], device=X.device))
                    wu, su, means = wf[order], sf[order], Xf[order]
                    counts = torch.ones_like(wu)
                    keys = _key(4, torch.zeros_like(wu), torch.arange(wu.numel(), device=X.device))
                else:
                    keys = _key(4, wu, su)
                st.wins.index_add_(0, su, self._count(counts))
                pushes = (wu, means, keys)
                winners = torch.cat([winners, su])
                pull_X = torch.cat([pull_X, means])
                pull_keys = torch.cat([pull_keys, keys])
        # step 5: contributions from the edges as they now are, then rounds
        contrib = _Contributions()
        if winners.numel() and self.p["connection_refresh"] == "always":
            self._refresh_all()
        if pushes is not None:
            contrib.add(pushes[0], pushes[1], -self.epush, 0, pushes[2])
        self._pulls(contrib, winners, pull_X, pull_keys)
        self._apply(contrib)
        self._insert(cand)  # step 6

    def _clone_for(self, j, extra):
        """Which of the clone requests ``extra`` (indices into the step-3 groups, winner and
        label ascending) fit: greedy while capacity allows, or whole winner groups
        (``capacity="all_or_nothing"``)."""
        room = max(0, self.max_nodes - self.state.K)
        if self.p["capacity"] != "all_or_nothing":
            return extra[:room]
        _, sizes = torch.unique_consecutive(j[extra], return_counts=True)
        ok = torch.zeros(extra.numel(), dtype=torch.bool, device=extra.device)
        K, start = self.state.K, 0
        for n in sizes.tolist():  # compat flag only: a loop over winners that need clones
            if (K + n < self.max_nodes) if n > 1 else (K < self.max_nodes):
                ok[start : start + n] = True
                K += n
            start += n
        return extra[ok]

    def _stage_u(self, X):
        """Stage U of §3: unlabelled samples, activations on the post-S map."""
        st = self.state
        A = self._act(X)
        a, w = A.max(1)
        cand = _Candidates()
        no_call = torch.zeros(0, dtype=torch.long, device=X.device)
        if self.p["unsup_threshold"] == "mean":
            uniq, means, counts, _, _ = self._grouped(w, X)
            am = activation_matrix(means, st.C[: st.K], st.omega[: st.K], self.p["distance"])
            a_u = am.gather(1, uniq.unsqueeze(1)).squeeze(1)  # each mean against its winner
            low = a_u < self.at
            cand.add(
                means[low],
                torch.full_like(uniq[low], -1),
                a_u[low],
                _key(5, uniq[low], torch.zeros_like(uniq[low])),
                torch.zeros_like(uniq[low]),
            )
            j, means, counts = uniq[~low], means[~low], counts[~low]
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
                        _key(5, w[low], pos),
                        torch.zeros_like(pos),
                    )
                else:
                    uniq, gm, _, _, ma = self._grouped(w[low], X[low], a[low])
                    cand.add(
                        gm,
                        torch.full_like(uniq, -1),
                        ma,
                        _key(5, uniq, torch.zeros_like(uniq)),
                        torch.zeros_like(uniq),
                    )
            j, means, counts = no_call, X[:0], no_call
            if (~low).any():
                j, means, counts, _, _ = self._grouped(w[~low], X[~low])
        contrib = _Contributions()
        if j.numel():
            if self.p["connection_refresh"] == "always":
                self._refresh_all()
            st.wins.index_add_(0, j, self._count(counts))
            self._pulls(contrib, j, means, _key(6, j, torch.zeros_like(j)))
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
        # int64 wins against a Python float: torch compares in float32, as the oracles do
        keep = ~(wins < float(self.p["lp"]) * self.t)
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
        return self.step_rows(self.X[idx], self.y[idx])

    def step_rows(self, X: torch.Tensor, y: torch.Tensor) -> bool:
        """Present one batch of rows ``X [B, m]`` with class indices ``y [B]`` (-1: none)."""
        self.history["presented"] += X.shape[0]
        if self.state.K == 0:
            self._init_map(X, y)
        else:
            lab = y >= 0
            if lab.any():
                self._stage_s(X[lab], y[lab])
            if (~lab).any():
                self._stage_u(X[~lab])
        return self._window(X.shape[0])

    # ------------------------------------------------------------------ schedule
    def run(self) -> NodeState:
        p = self.p
        stream = _BatchStream(
            self.N, self.B, self.gen, p["sampling"] == "replacement", self.X.device
        )
        if p["init"] == "random":
            x0 = torch.rand(self.m, generator=self.gen, dtype=torch.float32).to(self.X)
            self.state.insert(x0.unsqueeze(0), torch.tensor([-1], device=self.X.device))
        n_batches = math.ceil(self.N / self.B)
        for _ in range(int(p["epochs"])):
            for _ in range(n_batches):
                self.step(stream.next())
            self.history["n_nodes"].append(self.state.K)
        conv = p["convergence"]
        if conv == "cpp":
            while self.t > 0:  # (a) finish the open window
                self.step(stream.next())
            self.max_nodes = self.state.K  # (b) freeze insertion
            if self.age > 0:  # (c) one more window: batches until it closes (a removal)
                while not self.step(stream.next()):
                    pass
        elif conv == "reference":  # R8: one extra pass, capped at 2 age_wins batches
            for _ in range(min(n_batches, 2 * self.age)):
                if self.step(stream.next()):
                    self.max_nodes = self.state.K
        self.history["n_nodes"].append(self.state.K)
        return self.state
