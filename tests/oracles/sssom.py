"""Oracle for SPEC §1-§2: LARFDSSOM / SS-SOM, online, one sample at a time.

Deliberately slow and literal. Every node is an :class:`OracleNode` holding 1-D float32 torch
tensors; every rule of SPEC §1-§2 is a few lines below, in the order the SPEC states it.

Arithmetic conventions (what a fast implementation must reproduce to agree bit for bit):

* K1  ``S = (omega * (x - c) ** 2).sum()`` on float32 vectors; ``D = sqrt(S)`` (weighted) or S.
* K2  ``a = omega.sum() / (omega.sum() + D + 1e-7)`` evaluated left to right in float32.
* K3  ``q = s * (delta.max() - delta.min())`` (float32), ``sigmoid(-(delta - delta.mean()) / q)``.
* K4  ``eb = e * beta`` in Python (double); ``delta = (1 - eb) * delta + eb * |x - c_old|``;
      ``omega = K3(delta)``; ``c = c + e * (x - c)``. Python scalars meet float32 tensors, so torch
      rounds each scalar to float32 once. ``e_n = en * eb`` and ``e_push = epush * eb`` in double.
* Thresholds are compared the way torch compares a float32 tensor with a Python float: the
  threshold is rounded to float32 (``a < at``, ``dist < minwd``). ``wins < lp * t``: ``lp * t`` is
  a Python double, compared with an int64 tensor, i.e. both in float32 (torch promotion).
* K5 Euclidean edge test: ``sqrt(((w_i - w_j) ** 2).sum()) < minwd`` (``"sq"``: no sqrt).
* argmax ties -> lowest index (strict ``>`` scan).
"""

from __future__ import annotations

import math

import numpy as np
import torch

EPS = 1e-7
F32 = torch.float32


# --------------------------------------------------------------------------- kernels (SPEC §1)
def round_half_away(v: float) -> int:
    """Round half away from zero (C++ ``round``), used for ``age_wins * N``."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def weighted_sq_distance(x: torch.Tensor, c: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """K1: S_j(x) = sum_i omega_ji (x_i - c_ji)^2 in the direct form; shapes [m] -> scalar."""
    return (omega * (x - c) ** 2).sum()


def activation(
    x: torch.Tensor, c: torch.Tensor, omega: torch.Tensor, distance: str = "weighted"
) -> torch.Tensor:
    """K2: a_j(x) = sum(omega) / (sum(omega) + D_j(x) + eps); D = sqrt(S) or S (K1)."""
    s_sq = weighted_sq_distance(x, c, omega)
    if distance == "weighted":
        d = torch.sqrt(s_sq)
    elif distance == "weighted_sq":
        d = s_sq
    else:
        raise ValueError(f"oracle does not implement distance={distance!r}")
    sw = omega.sum()
    return sw / (sw + d + EPS)


def relevance(delta: torch.Tensor, s: float) -> torch.Tensor:
    """K3: omega_i = sigmoid(-(delta_i - mean) / q), q = s (max - min); ones unless 0 < q < inf."""
    dmax = delta.max()
    dmin = delta.min()
    dmean = delta.mean()
    q = s * (dmax - dmin)
    qv = q.item()
    if qv > 0 and math.isfinite(qv):
        return torch.sigmoid(-(delta - dmean) / q)
    return torch.ones_like(delta)


class OracleNode:
    """One node: prototype c, distance average delta, relevance omega, wins, class."""

    __slots__ = ("c", "delta", "omega", "wins", "cls")

    def __init__(self, c: torch.Tensor, cls: int = -1) -> None:
        self.c = c.detach().to(F32).clone()
        self.delta = torch.zeros_like(self.c)  # new node: delta = 0
        self.omega = torch.ones_like(self.c)  # new node: omega = 1
        self.wins = 0
        self.cls = int(cls)

    def copy(self) -> OracleNode:
        n = OracleNode(self.c, self.cls)
        n.delta = self.delta.clone()
        n.omega = self.omega.clone()
        n.wins = self.wins
        return n


def node_update(node: OracleNode, x: torch.Tensor, e: float, beta: float, s: float) -> None:
    """K4 U(j, x, e): delta (with the OLD centre), then omega = K3(delta), then c."""
    eb = e * beta
    node.delta = (1.0 - eb) * node.delta + eb * (x - node.c).abs()
    node.omega = relevance(node.delta, s)
    node.c = node.c + e * (x - node.c)


def connected(
    a: OracleNode, b: OracleNode, minwd: float, conn_metric: str = "euclid", use_class: bool = True
) -> bool:
    """K5: ||omega_a - omega_b|| < minwd and classes compatible (equal, or either is -1)."""
    sq = ((a.omega - b.omega) ** 2).sum()
    if conn_metric == "euclid":
        dist = torch.sqrt(sq)
    elif conn_metric == "sq":
        dist = sq
    else:
        raise ValueError(f"oracle does not implement conn_metric={conn_metric!r}")
    if not bool(dist < minwd):
        return False
    if not use_class:
        return True
    return a.cls == b.cls or a.cls == -1 or b.cls == -1


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"oracle: {name}={value!r} not in {allowed}")


# --------------------------------------------------------------------------- shared map machinery
class _OracleMap:
    """State and rules shared by the online and the batch oracle (nodes, edges, window, predict)."""

    def __init__(
        self,
        at: float = 0.95,
        lp: float = 0.005,
        beta: float = 0.1,
        age_wins: float = 10.0,
        eb: float = 0.05,
        en: float = 0.1,
        s: float = 0.05,
        minwd: float = 0.2,
        epochs: int = 10,
        epush: float = 0.5,
        max_nodes: int = 200,
        seed: int = 0,
        *,
        distance: str = "weighted",
        conn_metric: str = "euclid",
        connection_refresh: str = "events",
        convergence: str = "cpp",
        label_fallback: str = "any",
        filter_noise: bool = False,
        count_all_wins: bool = False,
        init: str = "first_sample",
        sampling: str = "permutation",
    ) -> None:
        _check("distance", distance, ("weighted", "weighted_sq"))
        _check("conn_metric", conn_metric, ("euclid", "sq"))
        _check("connection_refresh", connection_refresh, ("events", "always"))
        _check("convergence", convergence, ("cpp", "none"))
        _check("label_fallback", label_fallback, ("any", "within_at"))
        _check("init", init, ("first_sample", "random"))
        _check("sampling", sampling, ("permutation", "replacement"))
        self.at = float(at)
        self.lp = float(lp)
        self.beta = float(beta)
        self.age_wins = float(age_wins)
        self.eb = float(eb)
        self.en = float(en)
        self.s = float(s)
        self.minwd = float(minwd)
        self.epochs = int(epochs)
        self.epush = float(epush)
        self.max_nodes = int(max_nodes)
        self.seed = int(seed)
        self.distance = distance
        self.conn_metric = conn_metric
        self.connection_refresh = connection_refresh
        self.convergence = convergence
        self.label_fallback = label_fallback
        self.filter_noise = bool(filter_noise)
        self.count_all_wins = bool(count_all_wins)
        self.init = init
        self.sampling = sampling
        self.nodes: list[OracleNode] = []
        self.adj: list[list[bool]] = []

    # ------------------------------------------------------------------ effective values (§2)
    @property
    def e_n(self) -> float:
        return self.en * self.eb

    @property
    def e_push(self) -> float:
        return self.epush * self.eb

    # ------------------------------------------------------------------ lifecycle
    def start(self, n_samples: int, n_features: int) -> None:
        """Reset the map for a training run on N = n_samples samples (used by fit).

        Seeds the one generator, computes age_wins = round(age_wins * N), and for
        ``init="random"`` draws the first node ``torch.rand(m, generator=g)`` before anything else.
        """
        self.n_samples_ = int(n_samples)
        self.n_features_in_ = int(n_features)
        self.generator_ = torch.Generator().manual_seed(self.seed)
        self.age_wins_ = round_half_away(self.age_wins * self.n_samples_)
        self.max_nodes_ = self.max_nodes  # (b) of the convergence phase sets it to K
        self.nodes = []
        self.adj = []
        self.t_ = 0
        self.events_: list[dict] = []
        self.presented_: list[int] = []  # indices of presented samples, in order
        self.n_steps_ = 0  # samples (online) or batches (batch oracle) presented so far
        self.update_counts_ = {"push": 0, "winner": 0, "neighbour": 0}  # K4 calls by kind
        self.phase_ = "organisation"
        self.saw_label_ = False
        self._draw_buf: list[int] = []
        self._draw_pos = 0
        if self.init == "random":
            x0 = torch.rand(self.n_features_in_, generator=self.generator_)
            self._insert(x0, -1, "init_random")

    def _draw(self) -> list[int]:
        """One draw of the sample stream: randperm(N) or N draws with replacement."""
        n = self.n_samples_
        if self.sampling == "permutation":
            return torch.randperm(n, generator=self.generator_).tolist()
        return torch.randint(0, n, (n,), generator=self.generator_).tolist()

    def _next_index(self) -> int:
        """Next sample index of the single stream (a new draw each time one is used up)."""
        if self._draw_pos >= len(self._draw_buf):
            self._draw_buf = self._draw()
            self._draw_pos = 0
        i = self._draw_buf[self._draw_pos]
        self._draw_pos += 1
        return i

    def _log(self, kind: str, **kw) -> None:
        self.events_.append({"kind": kind, "step": self.n_steps_, "phase": self.phase_, **kw})

    # ------------------------------------------------------------------ nodes and edges
    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [activation(x, n.c, n.omega, self.distance) for n in self.nodes]

    @staticmethod
    def _argmax(acts: list[torch.Tensor], allowed=None) -> int | None:
        """argmax over allowed indices (all if None), ties -> lowest index; None if empty."""
        best = None
        for j, a in enumerate(acts):
            if allowed is not None and not allowed(j):
                continue
            if best is None or bool(a > acts[best]):
                best = j
        return best

    def _connected(self, i: int, j: int) -> bool:
        return connected(self.nodes[i], self.nodes[j], self.minwd, self.conn_metric)

    def _refresh_incident(self, i: int) -> None:
        """K5 for every pair (i, k), k != i, written symmetrically."""
        for k in range(len(self.nodes)):
            if k == i:
                continue
            v = self._connected(i, k)
            self.adj[i][k] = v
            self.adj[k][i] = v

    def _refresh_all(self) -> None:
        k = len(self.nodes)
        self.adj = [[False] * k for _ in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                v = self._connected(i, j)
                self.adj[i][j] = v
                self.adj[j][i] = v

    def _neighbours(self, i: int) -> list[int]:
        return [k for k in range(len(self.nodes)) if self.adj[i][k]]

    def _append_node(self, node: OracleNode) -> int:
        self.nodes.append(node)
        for row in self.adj:
            row.append(False)
        self.adj.append([False] * len(self.nodes))
        return len(self.nodes) - 1

    def _insert(self, x: torch.Tensor, cls: int, source: str) -> int:
        """New node last: c = x, delta = 0, omega = 1, wins = 0; recompute its incident edges."""
        j = self._append_node(OracleNode(x, cls))
        self._refresh_incident(j)
        self._log("insert", node=j, cls=int(cls), source=source)
        return j

    def _can_insert(self) -> bool:
        return len(self.nodes) < self.max_nodes_

    def _update(self, j: int, x: torch.Tensor, e: float, kind: str) -> None:
        """K4 on node j; ``kind`` (push / winner / neighbour) only feeds ``update_counts_``."""
        self.update_counts_[kind] += 1
        node_update(self.nodes[j], x, e, self.beta, self.s)

    # ------------------------------------------------------------------ window / removal (§2)
    def _advance(self, units: int) -> None:
        """t += units; if t >= age_wins: close the window (removal)."""
        self.t_ += units
        if self.t_ >= self.age_wins_:
            self._close_window()

    def _close_window(self) -> None:
        """Remove every node with wins < lp * t (keep >= 1 node); wins <- 0; t <- 0; all edges."""
        thr = self.lp * self.t_
        keep = [i for i, n in enumerate(self.nodes) if not bool(torch.tensor(n.wins) < thr)]
        if not keep and self.nodes:
            best = 0
            for i, n in enumerate(self.nodes):
                if n.wins > self.nodes[best].wins:
                    best = i
            keep = [best]
        removed = [i for i in range(len(self.nodes)) if i not in keep]
        self._log("window", t=self.t_, removed=removed)
        if removed:
            self._log("remove", nodes=removed)
        self.nodes = [self.nodes[i] for i in keep]  # removal keeps the relative order
        for n in self.nodes:
            n.wins = 0
        self.t_ = 0
        self._refresh_all()

    # ------------------------------------------------------------------ outputs (§2 Outputs)
    def _classify(self, x: torch.Tensor) -> tuple[int, int]:
        """(class, cluster node id) of one sample per SPEC §2 Outputs."""
        acts = self._activations(x)
        s = self._argmax(acts)
        noise = bool(acts[s] < self.at)
        if self.filter_noise and noise:
            return -1, -1
        if not self.saw_label_:
            # SPEC §2 ambiguity: the within_at+filter_noise "no labelled node => noise" rule is
            # read as part of the classification path only; a model that saw no label (LARFDSSOM)
            # has no labelled node at all and reports its winner s (or -1 for a_s < at above).
            return -1, s
        if self.nodes[s].cls != -1:
            return self.nodes[s].cls, s
        if self.label_fallback == "any":
            j = self._argmax(acts, lambda k: self.nodes[k].cls != -1)
        else:
            j = self._argmax(acts, lambda k: self.nodes[k].cls != -1 and bool(acts[k] >= self.at))
        if j is not None:
            return self.nodes[j].cls, j
        if self.filter_noise and self.label_fallback == "within_at":
            return -1, -1
        return -1, s

    def _as_x(self, X) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X, dtype=np.float32))

    def predict_cluster(self, X) -> np.ndarray:
        """Node id reported for each sample (-1 = noise when filter_noise)."""
        X = self._as_x(X)
        return np.array([self._classify(x)[1] for x in X], dtype=np.int64)

    def predict(self, X) -> np.ndarray:
        """Classes (-1 = no class); cluster ids only if the model never saw a label."""
        X = self._as_x(X)
        if not self.saw_label_:
            return self.predict_cluster(X)
        return np.array([self._classify(x)[0] for x in X], dtype=np.int64)

    def activations(self, X) -> np.ndarray:
        """K2 activation matrix [n, K] (float32)."""
        X = self._as_x(X)
        return np.array([[a.item() for a in self._activations(x)] for x in X], dtype=np.float32)

    # ------------------------------------------------------------------ exposed state
    @property
    def n_nodes_(self) -> int:
        return len(self.nodes)

    @property
    def prototypes_(self) -> np.ndarray:
        return self._stack("c")

    @property
    def relevances_(self) -> np.ndarray:
        return self._stack("omega")

    @property
    def deltas_(self) -> np.ndarray:
        return self._stack("delta")

    @property
    def wins_(self) -> np.ndarray:
        return np.array([n.wins for n in self.nodes], dtype=np.int64)

    @property
    def classes_(self) -> np.ndarray:
        return np.array([n.cls for n in self.nodes], dtype=np.int64)

    @property
    def adjacency_(self) -> np.ndarray:
        k = len(self.nodes)
        return np.array(self.adj, dtype=bool).reshape(k, k)

    # names without the trailing underscore, as aliases
    n_nodes = n_nodes_
    prototypes = prototypes_
    relevances = relevances_
    deltas = deltas_
    wins = wins_
    classes = classes_
    adjacency = adjacency_

    @property
    def events(self) -> list[dict]:
        return self.events_

    def _stack(self, attr: str) -> np.ndarray:
        m = getattr(self, "n_features_in_", 0)
        if not self.nodes:
            return np.zeros((0, m), dtype=np.float32)
        return torch.stack([getattr(n, attr) for n in self.nodes]).numpy().copy()

    @staticmethod
    def _as_xy(X, y):
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        if X.ndim != 2:
            raise ValueError("X must be 2-D")
        if y is None:
            yl = [-1] * X.shape[0]
        else:
            yl = [int(v) for v in np.asarray(y).reshape(-1)]
            if len(yl) != X.shape[0]:
                raise ValueError("len(y) != len(X)")
        return X, yl


# --------------------------------------------------------------------------- online engine (§2)
class OracleSSSOM(_OracleMap):
    """Online LARFDSSOM / SS-SOM oracle (SPEC §2). LARFDSSOM = fit(X) with no labels.

    Parameters (code names of SPEC §2/§3): at, lp, beta (dsbeta), age_wins (multiplier of N),
    eb, en (multiplier of eb), s (eps_ds), minwd, epochs, epush (multiplier of eb), max_nodes,
    seed; flags distance, conn_metric, connection_refresh, convergence, label_fallback,
    filter_noise (default False = SS-SOM; pass True for LARFDSSOM), count_all_wins, init,
    sampling.

    State after fit: prototypes_, relevances_, deltas_, wins_, classes_ (numpy, K rows, creation
    order), adjacency_ (K x K bool), n_nodes_, t_, age_wins_ (effective), max_nodes_ (effective),
    events_ (list of dicts: kind in insert/push/window/remove, step, phase, ...), presented_
    (sample indices in presentation order), update_counts_ (K4 calls by kind), saw_label_.
    ``nodes`` holds the OracleNode objects (c, delta, omega, wins, cls).
    """

    def fit(self, X, y=None) -> OracleSSSOM:
        X, yl = self._as_xy(X, y)
        n, m = X.shape
        self.start(n, m)
        self.saw_label_ = any(v != -1 for v in yl)
        for _ in range(self.epochs):
            for _ in range(n):
                self._present_index(X, yl, self._next_index())
        if self.convergence == "cpp":
            self.phase_ = "convergence"
            # (a) if t > 0, keep presenting until the current window closes (t back to 0)
            while self.t_ > 0:
                self._present_index(X, yl, self._next_index())
            # (b) freeze insertion
            self.max_nodes_ = len(self.nodes)
            # (c) exactly age_wins more samples (ends with a removal)
            for _ in range(self.age_wins_):
                self._present_index(X, yl, self._next_index())
        return self

    def _present_index(self, X: torch.Tensor, yl: list[int], i: int) -> None:
        self.presented_.append(i)
        self.present(X[i], yl[i])

    def present(self, x, y: int = -1) -> None:
        """One online step (init / unsupervised / supervised) followed by the window check."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        y = int(y)
        if y != -1:
            self.saw_label_ = True
        if not self.nodes:
            # Init: the first presented sample creates node 0 at x with class y; no update.
            self._insert(x, y, "init")
        elif y == -1:
            self._unsupervised_step(x)
        else:
            self._supervised_step(x, y)
        self.n_steps_ += 1
        self._advance(1)

    def _unsupervised_step(self, x: torch.Tensor) -> None:
        acts = self._activations(x)
        s = self._argmax(acts)
        if bool(acts[s] < self.at):
            if self.count_all_wins:
                self.nodes[s].wins += 1
            if self._can_insert():
                self._insert(x, -1, "unsup")
            return
        self.nodes[s].wins += 1
        self._pull_with_neighbours(s, x)

    def _supervised_step(self, x: torch.Tensor, y: int) -> None:
        acts = self._activations(x)
        s = self._argmax(acts)
        if self.nodes[s].cls in (y, -1):
            if bool(acts[s] < self.at):
                if self._can_insert():
                    self._insert(x, y, "sup")
                return
            self.nodes[s].wins += 1
            self.nodes[s].cls = y
            if self.connection_refresh == "events":
                self._refresh_incident(s)
            self._pull_with_neighbours(s, x)
            return
        sp = self._argmax(
            acts,
            lambda j: bool(acts[j] >= self.at) and self.nodes[j].cls in (y, -1),
        )
        if sp is None:
            if self._can_insert():
                self._insert(x, y, "conflict")
            return
        if self.connection_refresh == "always":
            self._refresh_all()
        self._log("push", node=s, to=sp, size=1)
        self._update(s, x, -self.e_push, "push")
        self.nodes[sp].wins += 1
        self._update(sp, x, self.eb, "winner")
        for j in self._neighbours(sp):
            self._update(j, x, self.e_n, "neighbour")

    def _pull_with_neighbours(self, s: int, x: torch.Tensor) -> None:
        """U(s, x, eb) then U(j, x, e_n) for the current neighbours j of s."""
        # SPEC §2 ambiguity: connection_refresh="always" "recomputes all edges before every
        # update"; read as once before each sample's update block (winner + neighbours, or
        # push + pull + neighbours), so the neighbour set is that of the refreshed graph.
        if self.connection_refresh == "always":
            self._refresh_all()
        neigh = self._neighbours(s)
        self._update(s, x, self.eb, "winner")
        for j in neigh:
            self._update(j, x, self.e_n, "neighbour")
