"""Data-parallel training over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch one process per GPU or CPU worker with torchrun; each process loads its own block of
rows (:func:`shard_range`) and calls a ``fit_*`` function; every rank ends with the same fitted
estimator, equal to the single-process fit on the concatenated data.  See docs/distributed.md.

>>> from somlab import SOM
>>> from somlab.distributed import fit_som, init_from_env, shard_range  # doctest: +SKIP
>>> init_from_env("cpu")                    # gloo; "cuda" selects NCCL     # doctest: +SKIP
>>> rows = shard_range(len(X))               # this rank's contiguous block  # doctest: +SKIP
>>> som = fit_som(SOM((10, 10), random_state=0), X[rows.start : rows.stop])  # doctest: +SKIP
"""

from ._comm import init_from_env, is_distributed, shard_range
from ._som import fit_som
from ._sssom import fit_batch_sssom

__all__ = ["fit_batch_sssom", "fit_som", "init_from_env", "is_distributed", "shard_range"]
