"""Slow, literal reference implementations ("oracles") of SPEC.md §1-§3.

They exist only to check the fast tensorized estimators: plain loops over samples and nodes,
float32 torch scalars/vectors for every arithmetic step (so rounding follows torch), one CPU
``torch.Generator`` for all randomness. Import as ``from oracles import OracleSSSOM`` (pytest puts
``tests/`` on ``sys.path``) or ``from tests.oracles import ...`` (``python -m pytest`` from the repo
root).
"""

from .batch_sssom import OracleBatchSSSOM
from .sssom import (
    EPS,
    OracleNode,
    OracleSSSOM,
    activation,
    connected,
    node_update,
    relevance,
    round_half_away,
    weighted_sq_distance,
)

__all__ = [
    "EPS",
    "OracleBatchSSSOM",
    "OracleNode",
    "OracleSSSOM",
    "activation",
    "connected",
    "node_update",
    "relevance",
    "round_half_away",
    "weighted_sq_distance",
]
