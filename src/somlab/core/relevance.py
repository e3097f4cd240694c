"""Relevance-learning kernels shared by LARFDSSOM, SS-SOM, Batch SS-SOM and SOMRL (SPEC.md §1).

Shapes: prototypes ``C [k, m]``, distance averages ``delta [k, m]``, relevances ``omega [k, m]``,
classes ``[k]`` (−1 = unlabelled).  K1 (weighted distance) and K2 (activation) live in
:mod:`somlab.core.distances` beside the other distances.
"""

from __future__ import annotations

import torch

from .distances import EPS, relevance_activation, weighted_sq_distances


def activations(X: torch.Tensor, C: torch.Tensor, omega: torch.Tensor, squared: bool = False):
    """K1 + K2: ``a_j(x) = sum(omega_j) / (sum(omega_j) + D_j(x) + eps)``, ``[n, k]``.

    ``squared=False`` uses D = sqrt(S) (``distance="weighted"``), True uses D = S
    (``"weighted_sq"``).
    """
    return relevance_activation(weighted_sq_distances(X, C, omega), omega, squared)


def activation_matrix(X, C, omega, distance: str = "weighted") -> torch.Tensor:
    """Activations for SPEC.md's ``distance`` flag, ``[n, k]``.

    "weighted": K2 with D = sqrt(K1); "weighted_sq": D = K1; "reference" (R1): the authors'
    PyTorch code, D = ||x - c||^2 * mean_i(omega_ji) (relevances barely enter the activation).
    """
    if distance == "reference":
        d2 = torch.cdist(X, C, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        D = d2 * omega.mean(1).unsqueeze(0)
        w = omega.sum(1).unsqueeze(0)
        return w / (w + D + EPS)
    return activations(X, C, omega, squared=distance == "weighted_sq")


def activation_rows(X, C, omega, distance: str = "weighted") -> torch.Tensor:
    """:func:`activation_matrix` when every row has its own nodes: ``X [r, m]`` against
    ``C, omega [r, k, m]``, ``[r, k]``, with the same arithmetic step for step (so maps trained
    together find the winners a map trained alone finds, ties included)."""
    if distance == "reference":
        d2 = torch.cdist(X.unsqueeze(1), C, compute_mode="donot_use_mm_for_euclid_dist")
        D = d2.squeeze(1) ** 2 * omega.mean(2)
        w = omega.sum(2)
        return w / (w + D + EPS)
    diff = X.unsqueeze(1) - C
    return relevance_activation((diff * diff * omega).sum(-1), omega, distance == "weighted_sq")


def relevance_from_delta(delta: torch.Tensor, s: float) -> torch.Tensor:
    """K3: logistic relevances from distance averages, row by row, ``[k, m] -> [k, m]``.

    ``q = s (max_i delta_i - min_i delta_i)``; if q > 0 and finite,
    ``omega_i = sigmoid(-(delta_i - mean_i delta) / q)``, else every omega_i = 1.
    """
    dmax = delta.amax(1, keepdim=True)
    dmin = delta.amin(1, keepdim=True)
    dmean = delta.mean(1, keepdim=True)
    q = (dmax - dmin) * s
    ok = (q > 0) & torch.isfinite(q)
    safe_q = torch.where(ok, q, torch.ones_like(q))
    return torch.where(ok, torch.sigmoid(-(delta - dmean) / safe_q), torch.ones_like(delta))


def node_update(C, delta, omega, nodes, X, e, beta: float, s: float) -> None:
    """K4, in place, for distinct ``nodes [r]`` pulled towards ``X [r, m]`` at rates ``e [r]``.

    1. ``delta <- (1 - e beta) delta + e beta |x - c|`` (old centre);
    2. ``omega <- K3(delta)``;  3. ``c <- c + e (x - c)``.  A negative ``e`` is a push.
    ``beta`` and ``s`` are floats or ``[r]`` tensors (one value per row).
    The scalars ``e``, ``e beta`` and ``1 - e beta`` are formed in float64 and rounded once to the
    map's dtype, as a per-sample loop over Python floats would (the oracles do exactly that).
    """
    e64 = e.to(torch.float64).unsqueeze(1)
    dt = C.dtype
    if torch.is_tensor(beta):  # one value per row (maps trained together, one per setting)
        beta = beta.to(torch.float64).unsqueeze(1)
    if torch.is_tensor(s):
        s = s.to(dt).unsqueeze(1)  # rounded to the map's dtype, as a Python float would be
    eb64 = e64 * beta
    c = C[nodes]
    d = (1.0 - eb64).to(dt) * delta[nodes] + eb64.to(dt) * (X - c).abs()
    delta[nodes] = d
    omega[nodes] = relevance_from_delta(d, s)
    C[nodes] = c + e64.to(dt) * (X - c)


__all__ = [
    "EPS",
    "activation_matrix",
    "activation_rows",
    "activations",
    "node_update",
    "relevance_from_delta",
]
