"""Train a SOM and a Batch SS-SOM data-parallel over torch.distributed; rank 0 saves both.

torchrun --nproc_per_node=2 examples/distributed_som.py                 # gloo, bundled data
torchrun --nproc_per_node=2 examples/distributed_som.py --data X.npy    # a memmap slice each
torchrun --nproc_per_node=4 examples/distributed_som.py --device cuda   # NCCL, one GPU each
python examples/distributed_som.py                                      # one process, same code

Each rank reads only its contiguous block of rows (``shard_range``): a slice of a ``.npy``
memmap (``--data``; only those pages are read) or of a bundled data set.  Every rank ends
with the same model, equal to a single-process fit on all the rows; rank 0 writes the files.
See docs/distributed.md for multi-node launches.
"""

import argparse
from pathlib import Path

import numpy as np
import torch.distributed as dist

from somlab import SOM, BatchSSSOM, load
from somlab.datasets import load_toy, load_uci
from somlab.distributed import fit_batch_sssom, fit_som, init_from_env, shard_range

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", help="a .npy file (n_samples, n_features); default: toy digits")
parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
parser.add_argument("--out", default="distributed_out", help="where rank 0 writes the models")
args = parser.parse_args()

backend = init_from_env(args.device)  # None under plain `python`: one process, same code
rank, world = (dist.get_rank(), dist.get_world_size()) if backend else (0, 1)

# 1. classic SOM, exact batch mode: each rank sums over its rows, one all-reduce per epoch
if args.data:
    X_all = np.load(args.data, mmap_mode="r")  # nothing is read yet
else:
    X_all, _ = load_toy("digits")  # 1797 x 64, small enough to stand in for a big file
rows = shard_range(len(X_all))
X = np.asarray(X_all[rows.start : rows.stop], dtype=np.float32)  # this rank's block only
som = SOM((12, 12), epochs=10, device=args.device, random_state=0)
fit_som(som, X)
print(f"[rank {rank}/{world} {backend}] SOM rows {rows.start}..{rows.stop - 1}: "
      f"QE {som.quantization_error_:.4f} TE {som.topographic_error_:.4f}", flush=True)  # fmt: skip

# 2. Batch SS-SOM, 10 % of the labels: the data is sharded, the map replicated
b = load_uci("diabetes", fold="x1_k1", labelled=0.10)
part = shard_range(len(b.X_train))
model = BatchSSSOM(device=args.device, random_state=0)
fit_batch_sssom(model, b.X_train[part.start : part.stop], b.y_train[part.start : part.stop])

if rank == 0:
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    som.save(out / "som.somlab")
    model.save(out / "batch_sssom.somlab")
    assert (load(out / "batch_sssom.somlab").predict(b.X_test) == model.predict(b.X_test)).all()
    print(f"Batch SS-SOM on diabetes: {model.n_nodes_} nodes, "
          f"test accuracy {model.score(b.X_test, b.y_test):.3f}; saved to {out}/")  # fmt: skip
if backend:
    dist.destroy_process_group()
