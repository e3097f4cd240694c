"""Fixed-capacity node storage for maps with a time-varying number of nodes.

Active nodes occupy slots ``0..K-1`` in their logical (creation) order, as SPEC.md requires:
a new node goes to slot K, a removal compacts the survivors keeping their relative order.
Tensors are allocated once at ``capacity``; nothing is concatenated per insertion.
"""

from __future__ import annotations

import torch

from ..core.relevance import connection_block


class NodeState:
    """Prototypes ``C``, distance averages ``delta``, relevances ``omega``, ``wins``, node
    ``classes`` (−1 = unlabelled) and the adjacency ``adj`` of up to ``capacity`` nodes.

    Use the ``*_active`` views (first ``K`` slots) for computation.
    """

    def __init__(self, capacity: int, n_features: int, dtype=torch.float32, device="cpu"):
        self.capacity = int(capacity)
        self.m = int(n_features)
        kw = dict(dtype=dtype, device=device)
        self.C = torch.zeros(self.capacity, self.m, **kw)
        self.delta = torch.zeros(self.capacity, self.m, **kw)
        self.omega = torch.ones(self.capacity, self.m, **kw)
        self.wins = torch.zeros(self.capacity, dtype=torch.int64, device=device)
        self.classes = torch.full((self.capacity,), -1, dtype=torch.int64, device=device)
        self.adj = torch.zeros(self.capacity, self.capacity, dtype=torch.bool, device=device)
        self.K = 0

    # --------------------------------------------------------------- views
    @property
    def C_active(self):
        return self.C[: self.K]

    @property
    def omega_active(self):
        return self.omega[: self.K]

    @property
    def classes_active(self):
        return self.classes[: self.K]

    @property
    def adj_active(self):
        return self.adj[: self.K, : self.K]

    # --------------------------------------------------------------- structure changes
    def insert(self, X: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Append nodes at ``X [r, m]`` with ``classes [r]`` (delta 0, omega 1, wins 0).

        Returns their slot indices.  The caller enforces max_nodes; edges are not touched.
        """
        r = X.shape[0]
        if self.K + r > self.capacity:
            raise RuntimeError("node capacity exceeded")  # a logic error, not a user error
        idx = torch.arange(self.K, self.K + r, device=self.C.device)
        self.C[idx] = X.to(self.C.dtype)
        self.delta[idx] = 0.0
        self.omega[idx] = 1.0
        self.wins[idx] = 0
        self.classes[idx] = classes.to(torch.int64)
        self.adj[idx] = False
        self.adj[:, idx] = False
        self.K += r
        return idx

    def clone_nodes(self, sources: torch.Tensor, classes: torch.Tensor, copy_wins: bool = False):
        """Append copies of ``sources`` (c, delta, omega; wins 0 or copied) with ``classes``."""
        r = sources.numel()
        if self.K + r > self.capacity:
            raise RuntimeError("node capacity exceeded")
        idx = torch.arange(self.K, self.K + r, device=self.C.device)
        self.C[idx] = self.C[sources]
        self.delta[idx] = self.delta[sources]
        self.omega[idx] = self.omega[sources]
        self.wins[idx] = self.wins[sources] if copy_wins else 0
        self.classes[idx] = classes.to(torch.int64)
        self.adj[idx] = False
        self.adj[:, idx] = False
        self.K += r
        return idx

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the active nodes where ``mask [K]`` is True, compacted in their order."""
        kept = torch.nonzero(mask).squeeze(1)
        k = kept.numel()
        for name in ("C", "delta", "omega", "wins", "classes"):
            t = getattr(self, name)
            t[:k] = t[kept].clone()
        sub = self.adj[kept][:, kept].clone()
        self.adj[: self.K, : self.K] = False
        self.adj[:k, :k] = sub
        self.K = k

    def refresh_edges(self, rows, minwd, metric="euclid", use_classes=True) -> None:
        """K5: recompute the edges incident to the active nodes ``rows``, symmetrically."""
        K = self.K
        if K == 0:
            return
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.C.device)
        if rows.numel() == 0:
            return
        block = connection_block(
            self.omega[:K], rows, minwd, self.classes[:K] if use_classes else None, metric
        )
        self.adj[rows, :K] = block
        self.adj[:K, rows] = block.T

    def refresh_all_edges(self, minwd, metric="euclid", use_classes=True) -> None:
        self.refresh_edges(torch.arange(self.K, device=self.C.device), minwd, metric, use_classes)

    def neighbours(self, j: int) -> torch.Tensor:
        """Active neighbours of node ``j``, ascending."""
        return torch.nonzero(self.adj[j, : self.K]).squeeze(1)
