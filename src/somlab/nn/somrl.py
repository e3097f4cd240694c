"""SOMRL: a self-organizing map layer with relevance learning (seed 001 §3, SPEC.md §6).

The map is a ``torch.nn.Module`` with fixed-capacity buffers of ``n_max`` slots and an
``active`` mask, so ``state_dict``, ``.to(device)`` and ``.double()`` carry the whole map.
``forward(Z)`` moves the map (no gradients) and returns the clustering loss of ``Z`` against
the moved map; gradients of that loss reach only ``Z`` (the encoder), never the map.

Shapes: samples ``Z [n, m]``, slots ``[n_max, m]``, activations ``[n, n_max]`` (``-inf`` in the
columns of inactive slots, so they never win).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._errors import DataError
from ..core.distances import relevance_activation, weighted_sq_distances
from ..core.relevance import relevance_from_delta
from ..core.updates import grouped_mean

KERNELS = ("weighted_sq", "weighted")
NEIGHS = ("exp_mul", "exp_div")
REPEL_RULES = ("signed", "literal")
LIFE_RULES = ("argmax", "above_at")
ORDERS = ("update_first", "insert_first")
RANKS = ("group", "sample")
DELTA_RULES = ("new", "old")
REFINE_METRICS = ("relevance", "euclidean")
LIFE_EPS = 1e-6  # "life reaches 0": a tolerance, so that 1 - t*ld rounding cannot add a call


def repel_force(d: torch.Tensor, rule: str = "signed") -> torch.Tensor:
    """Repel function R(d), per dimension, ``d = cbar - c`` (SPEC.md §6 step 4).

    ``"signed"``: ``sign(d) max(1 - 2|d|, 0)`` (pushes away from the map centre, zero beyond 0.5);
    ``"literal"``: ``max(1 - 2d, 0)`` as printed in 001 eq. 4.
    """
    if rule == "literal":
        return (1.0 - 2.0 * d).clamp_min(0.0)
    return torch.sign(d) * (1.0 - 2.0 * d.abs()).clamp_min(0.0)


def rank_decay(rank: torch.Tensor, gamma: float, rule: str = "exp_mul") -> torch.Tensor:
    """Neighbourhood h(r) of activation rank r (001 §3.5): ``exp(-gamma r)`` (``"exp_mul"``, the
    text's "decay rate") or ``exp(-r / gamma)`` (``"exp_div"``); h(0) = 1 for the winner."""
    return torch.exp(-gamma * rank) if rule == "exp_mul" else torch.exp(-rank / gamma)


def _check_real(name, value, lo, hi, open_lo=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > lo if open_lo else value >= lo) and value <= hi
    if not ok:
        bounds = f"{'(' if open_lo else '['}{lo}, {hi}{')' if hi == math.inf else ']'}"
        raise ValueError(f"{name} must be a real number in {bounds}, got {value!r}")
    return float(value)


def _check_int(name, value, lo):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


class SOMRL(nn.Module):
    """Self-Organizing Map with Relevance Learning, a differentiable clustering layer.

    Each node j has a centre c_j, distance averages delta_j, relevances omega_j = K3(delta_j) and a
    life in (0, 1].  Activation (K2) ``a_j(z) = sum(omega_j) / (sum(omega_j) + D_j(z) + 1e-7)`` with
    ``D_j = S_j = sum_d omega_jd (z_d - c_jd)^2`` (``kernel="weighted_sq"``) or ``sqrt(S_j)``.

    Parameters
    ----------
    n_features : int
        Latent dimension m.
    at : float in (0, 1]
        Activation threshold: below it a sample is novel (insertion), above it the node learns.
    lr : float in (0, 1]
        Learning rate of the winner; rank r neighbours learn at ``lr * h(r)``.
    repel : float in [0, 1]
        Repel rate rho, the push away from the mean of the prototypes (001 eq. 3).
    life_decay : float in [0, 1]
        Life ``ld`` lost by a node at each call where it wins no sample.
    beta : float in (0, 1]
        Rate of the distance moving averages delta (001 eq. 5).
    gamma : float > 0
        Neighbourhood decay: ``h(r) = exp(-gamma r)`` (``"exp_mul"``) or ``exp(-r / gamma)``.
    s : float > 0
        Slope of the logistic relevance function K3.
    n_max : int >= 1
        Capacity: at most this many active nodes.
    kernel, neigh, repel_rule, life_rule : str
        SPEC.md flags (first value is the default): kernel {"weighted_sq", "weighted"},
        neigh {"exp_mul", "exp_div"}, repel_rule {"signed", "literal"}, life_rule {"argmax",
        "above_at"} ("above_at" restores life only to winners with a >= at, as the precursor).
    order, ranks, delta_rule : str
        The further Choices SPEC.md §6 names: ``order="insert_first"`` inserts the novel groups
        before the update (Alg. 1; the update then sees the new nodes), ``ranks="sample"``
        gives every sample above ``at`` its own update set and ranks (Alg. 1) instead of its
        group mean, ``delta_rule="old"`` measures delta from the old centre (Alg. 1's order and
        the precursor) instead of the updated one (eq. 5).
    device, dtype : optional
        Of the state buffers (default: CPU, ``torch.get_default_dtype()``).

    The defaults of the hyper-parameters are seed 001 Table 2's "best" MNIST setting.

    Attributes
    ----------
    centres, delta, omega : [n_max, m] buffers
    life : [n_max] buffer
    active : [n_max] bool buffer

    Examples
    --------
    >>> som = SOMRL(2, at=0.9)
    >>> loss = som(torch.tensor([[0.1, 0.2], [0.15, 0.2]]))
    >>> som.n_active, som.predict(torch.tensor([[0.1, 0.2]])).tolist()
    (1, [0])
    """

    def __init__(
        self,
        n_features: int,
        at: float = 0.99425,
        lr: float = 0.1426,
        repel: float = 1.0,
        life_decay: float = 0.36,
        beta: float = 0.067,
        gamma: float = 1.382,
        s: float = 0.426,
        n_max: int = 200,
        kernel: str = "weighted_sq",
        neigh: str = "exp_mul",
        repel_rule: str = "signed",
        life_rule: str = "argmax",
        order: str = "update_first",
        ranks: str = "group",
        delta_rule: str = "new",
        *,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.n_features = _check_int("n_features", n_features, 1)
        self.at = _check_real("at", at, 0.0, 1.0, open_lo=True)
        self.lr = _check_real("lr", lr, 0.0, 1.0, open_lo=True)
        self.repel = _check_real("repel", repel, 0.0, 1.0)
        self.life_decay = _check_real("life_decay", life_decay, 0.0, 1.0)
        self.beta = _check_real("beta", beta, 0.0, 1.0, open_lo=True)
        self.gamma = _check_real("gamma", gamma, 0.0, math.inf, open_lo=True)
        self.s = _check_real("s", s, 0.0, math.inf, open_lo=True)
        self.n_max = _check_int("n_max", n_max, 1)
        self.kernel = _check_choice("kernel", kernel, KERNELS)
        self.neigh = _check_choice("neigh", neigh, NEIGHS)
        self.repel_rule = _check_choice("repel_rule", repel_rule, REPEL_RULES)
        self.life_rule = _check_choice("life_rule", life_rule, LIFE_RULES)
        self.order = _check_choice("order", order, ORDERS)
        self.ranks = _check_choice("ranks", ranks, RANKS)
        self.delta_rule = _check_choice("delta_rule", delta_rule, DELTA_RULES)
        fk = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        shape = (self.n_max, self.n_features)
        self.register_buffer("centres", torch.zeros(shape, **fk))
        self.register_buffer("delta", torch.zeros(shape, **fk))
        self.register_buffer("omega", torch.ones(shape, **fk))
        self.register_buffer("life", torch.zeros(self.n_max, **fk))
        self.register_buffer("active", torch.zeros(self.n_max, dtype=torch.bool, device=device))

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_max={self.n_max}, at={self.at}, lr={self.lr}, "
            f"kernel={self.kernel!r}"
        )

    # ----------------------------------------------------------------------------- read-outs
    @property
    def n_active(self) -> int:
        """Number K of active nodes."""
        return int(self.active.sum())

    @property
    def prototypes(self) -> torch.Tensor:
        """Centres of the active nodes, ``[K, m]``, in slot order."""
        return self.centres[self.active]

    @property
    def relevances(self) -> torch.Tensor:
        """Relevances of the active nodes, ``[K, m]``, in slot order."""
        return self.omega[self.active]

    def _check_input(self, Z) -> torch.Tensor:
        """Z as a 2-D float tensor on the buffers' device and dtype (autograd history kept)."""
        if not isinstance(Z, torch.Tensor):
            Z = torch.as_tensor(Z)
        if Z.dim() != 2 or Z.shape[1] != self.n_features or Z.shape[0] == 0:
            raise DataError(
                f"Z must be a 2-D tensor [n >= 1, {self.n_features}] (n_features="
                f"{self.n_features}), got shape {tuple(Z.shape)}"
            )
        Z = Z.to(device=self.centres.device, dtype=self.centres.dtype)
        lo, hi = torch.aminmax(Z.detach())  # NaN propagates: one reduction, one sync
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise DataError("Z contains NaN or inf; SOMRL needs finite latent vectors")
        limit = math.sqrt(torch.finfo(Z.dtype).max / (4 * self.n_features))
        if max(-lo, hi) > limit:
            raise DataError(
                f"Z has values up to {max(-lo, hi):.3g} in magnitude, beyond {limit:.3g}, where "
                "SOMRL's squared distances overflow; scale the latent codes (e.g. a sigmoid)"
            )
        return Z

    def _activations(self, X: torch.Tensor) -> torch.Tensor:
        """K1 + K2 of ``X [n, m]`` to every slot, ``[n, n_max]``; inactive slots get -inf."""
        A = X.new_full((X.shape[0], self.n_max), -math.inf)
        idx = self.active.nonzero().squeeze(1)
        if idx.numel():
            om = self.omega[idx]
            S = weighted_sq_distances(X, self.centres[idx], om)
            A[:, idx] = relevance_activation(S, om, squared=self.kernel == "weighted_sq")
        return A

    def predict(self, Z) -> torch.Tensor:
        """Compact cluster id of each row of Z, ``[n]`` long: the rank of its winner slot among the
        active slots.  No threshold: every sample gets its most activated node.
        """
        Z = self._check_input(Z)
        if not bool(self.active.any()):
            raise RuntimeError("SOMRL map is empty: call forward() on some data first")
        with torch.no_grad():
            slot = self._activations(Z).argmax(1)
            return (self.active.long().cumsum(0) - 1)[slot]

    def topology(self) -> torch.Tensor:
        """Adjacency ``[K, K]`` (bool) of the active nodes, mutual activation (001 §3.6).

        i != j are linked iff ``a_j(c_i) >= at`` and ``a_i(c_j) >= at``.
        """
        with torch.no_grad():
            C, om = self.prototypes, self.relevances
            A = relevance_activation(
                weighted_sq_distances(C, C, om), om, squared=self.kernel == "weighted_sq"
            )  # A[i, j] = a_j(c_i)
            adj = (A >= self.at) & (A.T >= self.at)
            return adj.fill_diagonal_(False)

    def assignment_cost(self, Z) -> torch.Tensor:
        """The within-cluster cost that :meth:`refine` lowers, a 0-d tensor (no gradient).

        ``sum_i D_{w_i}(z_i)^2 / Omega_{w_i}^p`` with ``w_i`` the :meth:`predict` winner,
        ``Omega_j = sum_d omega_jd`` and ``D_j^2 = S_j`` (``p = 1``, ``kernel="weighted_sq"``) or
        ``p = 2`` (``kernel="weighted"``): the winner is exactly the node that minimizes the
        summand, since ``a_j = Omega_j / (Omega_j + D_j)`` decreases with ``D_j / Omega_j``.
        """
        Z = self._check_input(Z).detach()
        with torch.no_grad():
            w = self._activations(Z).argmax(1)
            return self._cost(Z, w)

    def _cost(self, Z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        om = self.omega[w]
        diff = Z - self.centres[w]
        p = 1 if self.kernel == "weighted_sq" else 2
        return ((om * diff * diff).sum(1) / om.sum(1) ** p).sum()

    def refine(self, Z, n_iter: int = 10, metric: str = "relevance") -> int:
        """Winner-only batch updates of the active centres on ``Z [n, m]`` (Lloyd iterations).

        Each iteration assigns every row to its :meth:`predict` winner and moves each node that
        won a row to the mean of its rows; distance averages, life and the set of active nodes
        are left as they are, and a node that wins nothing keeps its centre. This is the end of
        a batch SOM whose neighbourhood has shrunk to the winner. ``metric="relevance"`` keeps
        the relevances; ``"euclidean"`` first sets them to 1 (``omega = 1``: the map's
        activation, winners and topology become unweighted from then on; a later
        :meth:`forward` recomputes the relevances of the nodes it updates), i.e. k-means on Z
        started from the map's centres. Either way, with the relevances fixed, an iteration
        never increases :meth:`assignment_cost` (the assignment minimizes each summand, the
        mean minimizes each node's weighted sum of squares). Stops early at a fixed point (an
        assignment equal to the previous one); returns the number of update passes run (at
        most ``n_iter``).
        """
        Z = self._check_input(Z).detach()
        n_iter = _check_int("n_iter", n_iter, 0)
        _check_choice("metric", metric, REFINE_METRICS)
        if not bool(self.active.any()):
            raise RuntimeError("SOMRL map is empty: call forward() on some data first")
        if metric == "euclidean":
            self.omega.fill_(1.0)  # inactive slots hold 1 already
        prev = None
        with torch.no_grad():
            for t in range(n_iter):
                w = self._activations(Z).argmax(1)
                if prev is not None and torch.equal(w, prev):
                    return t
                keys, means, _, _ = grouped_mean(w, Z)
                self.centres[keys] = means
                prev = w
        return n_iter

    # ---------------------------------------------------------------------------------- loss
    def loss(self, Z) -> torch.Tensor:
        """Clustering loss of Z against the current (detached) map, a 0-d tensor.

        ``Lc = (1/|I|) sum_{i in I} sum_d omega_{w_i d} (z_id - c_{w_i d})^2`` with w_i the winner
        and ``I = {i : a_{w_i}(z_i) >= at}``; ``0 * sum(Z)`` when I is empty.  Always the squared
        form S, also with ``kernel="weighted"`` (sqrt has an infinite gradient at 0).
        """
        return self._loss(self._check_input(Z))

    def _loss(self, Z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            a, w = self._activations(Z.detach()).max(1)
            inside = (a >= self.at).to(Z.dtype)
        # K1's direct form for the winner only: the backward pass stays [n, m], not [n, K, m]
        diff = Z - self.centres[w]
        S = (self.omega[w] * diff * diff).sum(1)
        # A masked mean instead of indexing I: no host sync, and 0 * S keeps the graph when I = {}.
        return (S * inside).sum() / inside.sum().clamp_min(1.0)

    # ------------------------------------------------------------------------------- training
    def forward(self, Z) -> torch.Tensor:
        """Move the map with the batch ``Z [n, m]`` (no grad), then return ``loss(Z)``.

        The map moves in train and eval mode alike; use :meth:`loss` or :meth:`predict` to read a
        frozen map.
        """
        Z = self._check_input(Z)
        with torch.no_grad():
            self._step(Z.detach())
        return self._loss(Z)

    def _step(self, X: torch.Tensor) -> None:
        """SPEC.md §6 forward steps 1-6 on the batch ``X [n, m]``."""
        if not bool(self.active.any()):  # step 1: the first batch seeds one node at its mean
            self._insert(X.mean(0, keepdim=True))
            return
        was_active = self.active.clone()
        A = self._activations(X)  # stage-start map
        a, w = A.max(1)
        high = a >= self.at
        novel = None
        n_free = self.n_max - int(was_active.sum())
        if n_free and not bool(high.all()):
            keys, means, _, _ = grouped_mean(w[~high], X[~high])
            a_mean = self._activations(means).gather(1, keys.unsqueeze(1)).squeeze(1)
            # step 5 order: most novel group first; the stable sort keeps ascending keys on ties
            novel = means[a_mean.argsort(stable=True)]
        if novel is not None and self.order == "insert_first":
            self._insert(novel)
        if bool(high.any()):
            if self.ranks == "sample":  # each sample its own group (Alg. 1)
                keys, means = w[high], X[high]
            else:
                keys, means, _, _ = grouped_mean(w[high], X[high])
            self._update(keys, means)
        if novel is not None and self.order == "update_first":
            self._insert(novel)
        self._age(w[high] if self.life_rule == "above_at" else w, was_active)

    def _neighbourhood_rates(self, keys: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """Rates ``eta [g, n_max]`` of SPEC.md §6 step 3 for high groups (winner ``keys [g]``).

        Update set of group g = its winner plus every node with ``a_k(x_g) >= at``; the winner has
        rank 0, the others ranks 1, 2, ... by descending ``a_k(x_g)`` (ties: lower slot);
        ``eta = lr * h(rank)`` on the update set, 0 elsewhere.
        """
        g = torch.arange(keys.numel(), device=keys.device)
        A = self._activations(means)
        member = A >= self.at
        member[g, keys] = True
        A[g, keys] = math.inf  # the winner ranks first even if its mean activation is not top
        order = A.argsort(dim=1, descending=True, stable=True)
        slots = torch.arange(self.n_max, device=keys.device).expand_as(order)
        rank = torch.empty_like(order).scatter_(1, order, slots).to(means.dtype)
        return self.lr * rank_decay(rank, self.gamma, self.neigh) * member

    def _update(self, keys: torch.Tensor, means: torch.Tensor) -> None:
        """SPEC.md §6 steps 3-4: merged pulls of every node in some update set (001 eqs. 3, 5, 6).

        ``W_k = sum_g eta_gk``, ``x~_k = sum_g eta_gk x_g / W_k``, ``eta_k = min(W_k, 1)``;
        ``c <- c + eta_k [(x~ - c) - rho R(cbar - c)]``, ``delta <- (1 - beta eta_k) delta +
        beta eta_k |x~ - c_new|``, ``omega <- K3(delta)``.
        """
        cbar = self.centres[self.active].mean(0)
        eta = self._neighbourhood_rates(keys, means)
        W = eta.sum(0)
        k = (W > 0).nonzero().squeeze(1)
        Wk = W[k].unsqueeze(1)
        target = (eta[:, k].T @ means) / Wk  # one matmul merges every group's contribution
        e = Wk.clamp_max(1.0)
        c = self.centres[k]
        push = self.repel * repel_force(cbar - c, self.repel_rule)
        c_new = c + e * ((target - c) - push)
        ref = c_new if self.delta_rule == "new" else c
        d = (1.0 - self.beta * e) * self.delta[k] + self.beta * e * (target - ref).abs()
        self.centres[k] = c_new
        self.delta[k] = d
        self.omega[k] = relevance_from_delta(d, self.s)

    def _insert(self, rows: torch.Tensor) -> None:
        """New nodes at ``rows [r, m]`` (in order) in the lowest free slots, while any is free."""
        free = (~self.active).nonzero().squeeze(1)[: rows.shape[0]]
        self.centres[free] = rows[: free.numel()]
        self.delta[free] = 0.0
        self.omega[free] = 1.0
        self.life[free] = 1.0
        self.active[free] = True

    def _age(self, winners: torch.Tensor, was_active: torch.Tensor) -> None:
        """SPEC.md §6 step 6: winners get life 1, other pre-existing nodes lose ``ld``.

        A node whose life falls to <= 1e-6 is deactivated and its slot cleared (c = 0, delta = 0,
        omega = 1, life = 0); nodes inserted in this call (not in ``was_active``) are left alone.
        """
        won = torch.zeros_like(was_active)
        won[winners] = True
        losing = was_active & ~won
        life = torch.where(was_active & won, torch.ones_like(self.life), self.life)
        life = torch.where(losing, life - self.life_decay, life)
        dead = losing & (life <= LIFE_EPS)
        self.life.copy_(life.masked_fill(dead, 0.0))
        self.active &= ~dead
        self.centres.masked_fill_(dead.unsqueeze(1), 0.0)
        self.delta.masked_fill_(dead.unsqueeze(1), 0.0)
        self.omega.masked_fill_(dead.unsqueeze(1), 1.0)
