"""Relevance-learning maps with a time-varying structure: LARFDSSOM, SS-SOM, Batch SS-SOM."""

from .batch_sssom import BatchSSSOM
from .ensemble import BatchSSSOMEnsemble
from .larfdssom import LARFDSSOM
from .sssom import SSSOM

__all__ = ["LARFDSSOM", "SSSOM", "BatchSSSOM", "BatchSSSOMEnsemble"]
