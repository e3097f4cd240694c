"""Oracle for SPEC §3: Batch SS-SOM, written as plain loops over samples, keys and nodes.

Shares the kernels, node storage, edges, window and predict of :mod:`.sssom`. A batch is
processed as SPEC §3 lists it: empty-map init, Stage S (steps 1-6), Stage U (steps 1-2), end of
batch (t, window). Grouped means (K6) are accumulated in float32 in batch order starting from
zeros and divided by the count (so a one-sample group's mean is the sample itself, bit for bit).

Update rounds (S5): ``U(j, .)`` reads and writes node j only, so "round r applies each node's
r-th contribution to all nodes at once" equals applying, node by node, that node's contributions
sorted by (kind: push < winner pull < neighbour pull, key). That is what ``_apply_rounds`` does.
"""

from __future__ import annotations

import torch

from .sssom import OracleNode, _check, _OracleMap

PUSH, PULL, NEIGH = 0, 1, 2


def _mean_rows(rows: list[torch.Tensor]) -> torch.Tensor:
    """K6 grouped mean: float32 sum in the given order, then / count."""
    acc = torch.zeros_like(rows[0])
    for r in rows:
        acc = acc + r
    return acc / len(rows)


def _mean_acts(acts: list[torch.Tensor]) -> torch.Tensor:
    acc = torch.zeros((), dtype=acts[0].dtype)
    for a in acts:
        acc = acc + a
    return acc / len(acts)


class OracleBatchSSSOM(_OracleMap):
    """Mini-batch SS-SOM oracle (SPEC §3). With batch_size=1 it equals :class:`OracleSSSOM`.

    Extra parameters: batch_size (default 32), capacity {greedy, all_or_nothing}, unsup_insert
    {group, per_sample}, conflict_update {grouped, per_sample}, count_unit {sample, batch},
    clone_wins {zero, copy}, labelled_conflict {push, clone}; all §2 parameters and flags of
    :class:`OracleSSSOM`. Exposes the same state; ``presented_`` lists sample indices in order,
    ``n_steps_`` counts batches; events also include kind "clone" (node, of, cls).
    """

    def __init__(
        self,
        *args,
        batch_size: int = 32,
        capacity: str = "greedy",
        unsup_insert: str = "group",
        conflict_update: str = "grouped",
        count_unit: str = "sample",
        clone_wins: str = "zero",
        labelled_conflict: str = "push",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        _check("capacity", capacity, ("greedy", "all_or_nothing"))
        _check("unsup_insert", unsup_insert, ("group", "per_sample"))
        _check("conflict_update", conflict_update, ("grouped", "per_sample"))
        _check("count_unit", count_unit, ("sample", "batch"))
        _check("clone_wins", clone_wins, ("zero", "copy"))
        _check("labelled_conflict", labelled_conflict, ("push", "clone"))
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = int(batch_size)
        self.capacity = capacity
        self.unsup_insert = unsup_insert
        self.conflict_update = conflict_update
        self.count_unit = count_unit
        self.clone_wins = clone_wins
        self.labelled_conflict = labelled_conflict

    # ------------------------------------------------------------------ schedule
    def start(self, n_samples: int, n_features: int) -> None:
        super().start(n_samples, n_features)
        self._batches: list[list[int]] = []
        self._batch_pos = 0

    def _next_batch(self) -> list[int]:
        """Next batch of the single stream: each draw (N indices) split into ceil(N/B) batches."""
        if self._batch_pos >= len(self._batches):
            idx = self._draw()
            b = self.batch_size
            self._batches = [idx[k : k + b] for k in range(0, len(idx), b)]
            self._batch_pos = 0
        batch = self._batches[self._batch_pos]
        self._batch_pos += 1
        return batch

    def fit(self, X, y=None) -> OracleBatchSSSOM:
        X, yl = self._as_xy(X, y)
        n, m = X.shape
        self.start(n, m)
        self.saw_label_ = any(v != -1 for v in yl)
        n_batches = -(-n // self.batch_size)
        for _ in range(self.epochs):
            for _ in range(n_batches):
                self._present_indices(X, yl, self._next_batch())
        if self.convergence == "cpp":
            self.phase_ = "convergence"
            # (a) if t > 0, present batches until the current window closes
            while self.t_ > 0:
                self._present_indices(X, yl, self._next_batch())
            # (b) freeze insertion
            self.max_nodes_ = len(self.nodes)
            # (c) present batches until the next window closes (t >= age_wins at a batch end)
            # SPEC §3 ambiguity: "present exactly age_wins more samples" becomes "batches until
            # the window closes" (identical for B = 1); with age_wins = 0 nothing is presented,
            # as in §2.
            if self.age_wins_ > 0:
                self._present_indices(X, yl, self._next_batch())
                while self.t_ > 0:
                    self._present_indices(X, yl, self._next_batch())
        return self

    def _present_indices(self, X: torch.Tensor, yl: list[int], idx: list[int]) -> None:
        self.presented_.extend(idx)
        self.present_batch(X[idx], [yl[i] for i in idx])

    # ------------------------------------------------------------------ one batch
    def present_batch(self, Xb, yb) -> None:
        """Process one batch (rows in batch order), then the end-of-batch window check."""
        Xb, yb = self._as_xy(Xb, yb)
        rows = list(Xb)
        if any(v != -1 for v in yb):
            self.saw_label_ = True
        units = len(rows) if self.count_unit == "sample" else 1
        if not self.nodes:
            self._init_from_batch(rows, yb)
        else:
            lab = [i for i in range(len(rows)) if yb[i] != -1]
            unl = [i for i in range(len(rows)) if yb[i] == -1]
            if lab:
                self._stage_s([rows[i] for i in lab], [yb[i] for i in lab])
            if unl:
                self._stage_u([rows[i] for i in unl])
        self.n_steps_ += 1
        self._advance(units)

    def _init_from_batch(self, rows: list[torch.Tensor], yb: list[int]) -> None:
        """Empty map: one node per distinct label (ascending, unlabelled last) at its mean."""
        labels = sorted({v for v in yb if v != -1})
        if -1 in yb:
            labels.append(-1)
        for lab in labels:
            if len(self.nodes) >= self.max_nodes_:
                break
            self._append_node(
                OracleNode(_mean_rows([r for r, v in zip(rows, yb) if v == lab]), lab)
            )
            self._log("insert", node=len(self.nodes) - 1, cls=lab, source="init")
        self._refresh_all()

    def _winners(self, rows: list[torch.Tensor]) -> tuple[list[list[torch.Tensor]], list[int]]:
        acts = [self._activations(x) for x in rows]
        return acts, [self._argmax(a) for a in acts]

    # ------------------------------------------------------------------ Stage S
    def _stage_s(self, rows: list[torch.Tensor], ys: list[int]) -> None:
        k0 = len(self.nodes)
        acts, win = self._winners(rows)  # step 1: A on the stage-start map
        a = [acts[i][win[i]] for i in range(len(rows))]
        low: dict[tuple, list[int]] = {}  # step 2 candidates, key (w, y)
        high: dict[tuple, list[int]] = {}  # step 3 groups, key (w, y)
        conflict: list[int] = []
        for i, y in enumerate(ys):
            c = self.nodes[win[i]].cls
            compatible = self.labelled_conflict == "clone" or c in (y, -1)
            if not compatible:
                conflict.append(i)
            elif bool(a[i] < self.at):
                low.setdefault((win[i], y), []).append(i)
            else:
                high.setdefault((win[i], y), []).append(i)

        # step 3: label assignment and clones (winners ascending, labels ascending)
        pulls: list[tuple[int, tuple, torch.Tensor, int]] = []  # (node, key, X, |group|)
        for j in sorted({w for w, _ in high}):
            labels = sorted(lab for w, lab in high if w == j)
            cj = self.nodes[j].cls
            if self.labelled_conflict == "clone" and cj != -1:
                own = [cj] if cj in labels else []
                extra = [lab for lab in labels if lab != cj]
            else:
                own, extra = labels[:1], labels[1:]
            targets = [(j, lab) for lab in own] + self._make_clones(j, extra)
            for n, lab in targets:
                g = high[(j, lab)]
                pulls.append((n, (3, j, lab), _mean_rows([rows[i] for i in g]), len(g)))
        for n, key, _, size in pulls:
            self.nodes[n].cls = key[2]
            self.nodes[n].wins += size if self.count_unit == "sample" else 1

        # step 4: conflicts (s' among stage-start nodes, classes read after step 3)
        conf_low: dict[tuple, list[int]] = {}
        conf_groups: dict[tuple, list[int]] = {}
        for i in conflict:
            y = ys[i]
            sp = self._argmax(
                acts[i],
                lambda k, i=i, y=y: (
                    k < k0 and bool(acts[i][k] >= self.at) and self.nodes[k].cls in (y, -1)
                ),
            )
            if sp is None:
                conf_low.setdefault((win[i], y), []).append(i)
            elif self.conflict_update == "grouped":
                conf_groups.setdefault((win[i], sp), []).append(i)
            else:
                # SPEC §3 ambiguity: conflict_update="per_sample" keeps the step-4 key (4, w, s')
                # and breaks ties between samples of one key by batch order: key (4, w, s', i).
                conf_groups[(win[i], sp, i)] = [i]

        # edges: incident edges of every pulled winner after class assignment, before updates
        has_updates = bool(pulls) or bool(conf_groups)
        if self.connection_refresh == "always":
            if has_updates:
                self._refresh_all()
        else:
            for n, _, _, _ in pulls:
                self._refresh_incident(n)

        # step 5: contributions, then rounds
        contrib: dict[int, list[tuple]] = {}
        for n, key, xm, _ in pulls:
            self._add_pull(contrib, n, key, xm)
        for gkey in sorted(conf_groups):
            w, sp = gkey[0], gkey[1]
            g = conf_groups[gkey]
            xm = _mean_rows([rows[i] for i in g])
            key = (4, *gkey)
            self._log("push", node=w, to=sp, size=len(g))
            contrib.setdefault(w, []).append((PUSH, key, xm, -self.e_push))
            self.nodes[sp].wins += len(g) if self.count_unit == "sample" else 1
            self._add_pull(contrib, sp, key, xm)
        self._apply_rounds(contrib)

        # step 6: insertion candidates (steps 2 and 4), after all updates
        cands = []
        for src, groups in (("sup", low), ("conflict", conf_low)):
            for key, g in groups.items():
                cands.append(
                    {
                        "a": _mean_acts([a[i] for i in g]).item(),
                        "key": key,
                        "x": _mean_rows([rows[i] for i in g]),
                        "cls": key[1],
                        "winner": key[0],
                        "source": src,
                    }
                )
        cands.sort(key=lambda c: (c["a"], c["key"]))
        if self.capacity == "greedy":
            self._insert_greedy(cands)
        else:
            # SPEC §3 ambiguity: "R5 applies per winner group for S2 candidates, clones and S4
            # candidates": calls are (step-2 candidates of one winner) and (step-4 candidates of
            # one winner), taken step 2 first, then step 4, winners ascending; inside a call in
            # the greedy order (ascending mean a, ties by key). A call of n candidates is inserted
            # whole iff K < max_nodes (n = 1) or K + n < max_nodes (n > 1), else not at all.
            for src in ("sup", "conflict"):
                for w in sorted({c["winner"] for c in cands if c["source"] == src}):
                    call = [c for c in cands if c["source"] == src and c["winner"] == w]
                    self._insert_all_or_nothing(call)

    def _make_clones(self, j: int, labels: list[int]) -> list[tuple[int, int]]:
        """Clones of j (copy c, delta, omega) for labels (ascending) while capacity allows."""
        made = []
        if self.capacity == "all_or_nothing" and not self._fits(len(labels)):
            labels = []
        for lab in labels:
            if not self._can_insert():
                break  # labels left without a node are dropped
            # SPEC §3 ambiguity: clone_wins="copy" copies j's wins as they are when the clone is
            # made, i.e. before this batch's step-3 wins increments.
            node = self.nodes[j].copy()
            node.cls = lab
            if self.clone_wins == "zero":
                node.wins = 0
            n = self._append_node(node)
            self._log("clone", node=n, of=j, cls=lab)
            made.append((n, lab))
        return made

    def _fits(self, n: int) -> bool:
        """all_or_nothing test: K + n < max_nodes for n > 1; K < max_nodes for n = 1."""
        if n <= 1:
            return len(self.nodes) < self.max_nodes_
        return len(self.nodes) + n < self.max_nodes_

    def _insert_greedy(self, cands: list[dict]) -> None:
        for c in cands:
            if not self._can_insert():
                break
            self._insert(c["x"], c["cls"], c["source"])

    def _insert_all_or_nothing(self, cands: list[dict]) -> None:
        if cands and self._fits(len(cands)):
            for c in cands:
                self._insert(c["x"], c["cls"], c["source"])

    # ------------------------------------------------------------------ rounds (S5 / U2)
    def _add_pull(self, contrib: dict, n: int, key: tuple, xm: torch.Tensor) -> None:
        """Winner pull of n and neighbour pulls of n's neighbours, all with the same key."""
        contrib.setdefault(n, []).append((PULL, key, xm, self.eb))
        for k in self._neighbours(n):
            contrib.setdefault(k, []).append((NEIGH, key, xm, self.e_n))

    def _apply_rounds(self, contrib: dict[int, list[tuple]]) -> None:
        """Each node: pushes -> winner pulls -> neighbour pulls, each kind by ascending key."""
        for n in sorted(contrib):
            for kind, _, xm, e in sorted(contrib[n], key=lambda c: (c[0], c[1])):
                self._update(n, xm, e, ("push", "winner", "neighbour")[kind])

    # ------------------------------------------------------------------ Stage U
    def _stage_u(self, rows: list[torch.Tensor]) -> None:
        acts, win = self._winners(rows)  # activations on the post-S map
        a = [acts[i][win[i]] for i in range(len(rows))]
        low: dict[tuple, list[int]] = {}
        high: dict[int, list[int]] = {}
        for i in range(len(rows)):
            if bool(a[i] < self.at):
                if self.count_all_wins:
                    self.nodes[win[i]].wins += 1
                key = (win[i],) if self.unsup_insert == "group" else (win[i], i)
                low.setdefault(key, []).append(i)
            else:
                high.setdefault(win[i], []).append(i)
        if high and self.connection_refresh == "always":
            self._refresh_all()
        contrib: dict[int, list[tuple]] = {}
        for j in sorted(high):
            g = high[j]
            self.nodes[j].wins += len(g) if self.count_unit == "sample" else 1
            self._add_pull(contrib, j, (j,), _mean_rows([rows[i] for i in g]))
        self._apply_rounds(contrib)
        cands = [
            {
                "a": _mean_acts([a[i] for i in g]).item(),
                "key": key,
                "x": _mean_rows([rows[i] for i in g]),
                "cls": -1,
                "winner": key[0],
                "source": "unsup",
            }
            for key, g in low.items()
        ]
        cands.sort(key=lambda c: (c["a"], c["key"]))
        if self.capacity == "greedy":
            self._insert_greedy(cands)
        else:
            self._insert_all_or_nothing(cands)  # one call per batch for U1 candidates
