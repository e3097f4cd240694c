"""The three CNNs of the Batch SS-SOM paper's image experiment (seed 000 §V-D, SPEC.md §9
"Table III"), their training and feature extraction, in plain torch.

Each network is an ``nn.Module`` with ``forward(x) -> logits [batch, 10]`` and
``features(x) -> [batch, feature_dim]``, the layer the paper feeds to Batch SS-SOM (the last
hidden layer, before the classifier):

* :class:`MNISTNet` -- [conv 1->16 5x5 p2, BN, ReLU, maxpool 2] -> [conv 16->32 5x5 p2, BN, ReLU,
  maxpool 2] -> FC 1568->32 (linear, **features**) -> FC 32->10;
* :class:`FashionNet` -- [conv 1->64 5x5, ReLU, maxpool 2] -> [conv 64->32 5x5, ReLU, maxpool 2]
  -> flatten 512 -> dropout 0.5 -> FC 512->128 (linear) -> FC 128->32 (linear, **features**)
  -> FC 32->10;
* :class:`SVHNNet` -- conv 3->20 5x5, ReLU, maxpool 2 -> conv 20->16 5x5, ReLU, maxpool 2 ->
  flatten 400 -> FC 400->120 ReLU -> FC 120->84 ReLU (**features**) -> FC 84->10.

Training (:func:`train_cnn`): cross-entropy, Adam, the authors' configuration per data set
(:data:`CNN_CONFIGS`). Features (:func:`extract_features`) are computed in **eval mode**
(batch norm uses its running statistics, dropout is off; the authors' code extracted them in
train mode, a bug: SPEC.md §9).

Images enter as arrays ``[n, H, W]`` (grey) or ``[n, C, H, W]``, uint8 0..255 or floats already
in [0, 1]; each batch is converted on the device (:func:`to_tensor`), so a large uint8 set
never exists in float32 in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._errors import SomlabError

__all__ = [
    "CNN_CONFIGS",
    "CNNConfig",
    "FashionNet",
    "MNISTNet",
    "SVHNNet",
    "build_cnn",
    "cnn_accuracy",
    "extract_features",
    "to_tensor",
    "train_cnn",
]


@dataclass(frozen=True)
class CNNConfig:
    """Training configuration of one network (the authors' hrm configuration, SPEC.md §9).

    ``mean``/``std``: after scaling the pixels to [0, 1], subtract ``mean`` and divide by
    ``std`` (None: no normalisation)."""

    lr: float
    batch_size: int
    epochs: int
    mean: float | None = None
    std: float | None = None


#: Per data set: MNIST lr 0.01, batch 128, 3 epochs, input / 255; Fashion-MNIST lr 0.001, batch
#: 64, 10 epochs, normalised with (0.1307, 0.3081) (MNIST's statistics, as the authors did);
#: SVHN lr 0.001, batch 128, 20 epochs, input / 255.
CNN_CONFIGS: dict[str, CNNConfig] = {
    "mnist": CNNConfig(lr=0.01, batch_size=128, epochs=3),
    "fmnist": CNNConfig(lr=0.001, batch_size=64, epochs=10, mean=0.1307, std=0.3081),
    "svhn": CNNConfig(lr=0.001, batch_size=128, epochs=20),
}


class MNISTNet(nn.Module):
    """MNIST network of seed 000 Fig. 8; ``features`` is FC1 (32-d, linear).

    ``x``: ``[batch, 1, 28, 28]``."""

    feature_dim = 32
    in_shape = (1, 28, 28)

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=1, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(16, 32, 5, stride=1, padding=2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(32 * 7 * 7, 32)
        self.fc2 = nn.Linear(32, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, 28, 28] -> [batch, 32]``."""
        return self.fc1(self.layer2(self.layer1(x)).flatten(1))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier head FC2: ``[batch, 32] -> [batch, n_classes]`` logits."""
        return self.fc2(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, 28, 28] -> [batch, n_classes]`` logits."""
        return self.classify(self.features(x))


class FashionNet(nn.Module):
    """Fashion-MNIST network of seed 000 Fig. 9; ``features`` is FC2 (32-d, linear).

    ``x``: ``[batch, 1, 28, 28]``."""

    feature_dim = 32
    in_shape = (1, 28, 28)

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(1, 64, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(nn.Conv2d(64, 32, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.dropout = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, 32)
        self.fc3 = nn.Linear(32, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, 28, 28] -> [batch, 32]``."""
        h = self.dropout(self.layer2(self.layer1(x)).flatten(1))
        return self.fc2(self.fc1(h))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier head FC3: ``[batch, 32] -> [batch, n_classes]`` logits."""
        return self.fc3(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, 28, 28] -> [batch, n_classes]`` logits."""
        return self.classify(self.features(x))


class SVHNNet(nn.Module):
    """SVHN network of seed 000 Fig. 10; ``features`` is FC2 (84-d, after ReLU).

    ``x``: ``[batch, 3, 32, 32]``."""

    feature_dim = 84
    in_shape = (3, 32, 32)

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 20, 5)
        self.conv2 = nn.Conv2d(20, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 3, 32, 32] -> [batch, 84]``."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2).flatten(1)
        return F.relu(self.fc2(F.relu(self.fc1(h))))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier head FC3: ``[batch, 84] -> [batch, n_classes]`` logits."""
        return self.fc3(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 3, 32, 32] -> [batch, n_classes]`` logits."""
        return self.classify(self.features(x))


_NETS = {"mnist": MNISTNet, "fmnist": FashionNet, "svhn": SVHNNet}


def _check_dataset(dataset: str) -> str:
    if dataset not in _NETS:
        raise SomlabError(f"unknown dataset {dataset!r}; choose from {', '.join(_NETS)}")
    return dataset


def build_cnn(dataset: str, seed: int | None = 0) -> nn.Module:
    """A fresh network for ``dataset`` ("mnist", "fmnist" or "svhn"); ``seed`` fixes its
    initial weights without touching torch's global generator."""
    cls = _NETS[_check_dataset(dataset)]
    if seed is None:
        return cls()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return cls()


def _memory_format(device) -> torch.memory_format:
    """channels_last on the CPU (1.5-2x faster convolutions there), the default elsewhere."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def to_tensor(images, device, config: CNNConfig, in_shape=None) -> torch.Tensor:
    """A batch of images as float32 ``[batch, C, H, W]`` on ``device``, scaled as the network
    was trained: uint8 / 255 (floats are taken as already in [0, 1]), then ``(x - mean) / std``
    when ``config`` says so. Grey ``[batch, H, W]`` gets its channel axis. On the CPU the
    tensor is channels_last (same values, faster convolutions)."""
    x = torch.as_tensor(np.asarray(images)).to(device)
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    else:
        x = x.float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if in_shape is not None and tuple(x.shape[1:]) != tuple(in_shape):
        raise SomlabError(f"images must be [n, {', '.join(map(str, in_shape))}], got {x.shape}")
    if config.mean is not None:
        x = (x - config.mean) / config.std
    return x.contiguous(memory_format=_memory_format(device))


def _check_images(X, y=None):
    X = np.asarray(X)
    if X.ndim not in (3, 4) or X.shape[0] == 0:
        raise SomlabError(
            f"images must be a non-empty [n, H, W] or [n, C, H, W] array, got {X.shape}"
        )
    if y is not None:
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise SomlabError(f"{X.shape[0]} images but labels of shape {y.shape}")
        if y.min() < 0:
            raise SomlabError("the CNN is trained on labelled images only (got a label < 0)")
    return X, y


def train_cnn(
    dataset: str,
    X,
    y,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
    model: nn.Module | None = None,
) -> nn.Module:
    """Train the network of ``dataset`` on labelled images (cross-entropy, Adam).

    Parameters
    ----------
    dataset : {"mnist", "fmnist", "svhn"}
        Picks the architecture and the defaults of :data:`CNN_CONFIGS`.
    X : array [n, H, W] or [n, C, H, W]
        uint8 pixels (or floats in [0, 1]).
    y : array [n]
        Class labels 0..9 (every image labelled).
    epochs : int, optional
        Passes over ``X`` (default: the data set's configuration).
    steps : int, optional
        Train for exactly this many optimiser steps instead (fresh permutation after each
        pass; the last batch of a pass may be smaller). Used to give a network trained on a
        small labelled subset the same number of updates as one trained on the full set.
    lr, batch_size : optional
        Override the configuration.
    seed : int
        Seeds the initial weights (unless ``model`` is given), the batch order and dropout;
        torch's global generator is left as it was.
    device : str or torch.device
    progress : bool
        A tqdm bar over the steps (stderr).
    model : nn.Module, optional
        Train this network instead of a fresh one.

    Returns
    -------
    nn.Module
        The trained network (left in eval mode), with ``history_ = {"loss": [...], "accuracy":
        [...], "steps": int}``: mean training loss and accuracy per pass.
    """
    cfg = CNN_CONFIGS[_check_dataset(dataset)]
    X, y = _check_images(X, y)
    lr = cfg.lr if lr is None else float(lr)
    batch_size = cfg.batch_size if batch_size is None else int(batch_size)
    n = X.shape[0]
    per_pass = math.ceil(n / batch_size)
    if steps is None:
        epochs = cfg.epochs if epochs is None else int(epochs)
        if epochs < 0:
            raise SomlabError(f"epochs must be >= 0, got {epochs}")
        steps = epochs * per_pass
    elif steps < 0:
        raise SomlabError(f"steps must be >= 0, got {steps}")
    device = torch.device(device)
    net = build_cnn(dataset, seed) if model is None else model
    net = net.to(device, memory_format=_memory_format(device))
    rng = np.random.default_rng(int(seed))
    y_t = torch.as_tensor(y, dtype=torch.long)
    history = {"loss": [], "accuracy": [], "steps": int(steps)}
    bar = None
    if progress and steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"CNN {dataset} (n={n})", leave=False)
    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(int(seed))
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()
        done = 0
        while done < steps:
            order = rng.permutation(n)
            tot_loss, tot_ok, seen = 0.0, 0, 0
            for b in range(per_pass):
                if done >= steps:
                    break
                idx = np.sort(order[b * batch_size : (b + 1) * batch_size])
                xb = to_tensor(X[idx], device, cfg, getattr(net, "in_shape", None))
                yb = y_t[idx].to(device)
                logits = net(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                tot_loss += float(loss.detach()) * len(idx)
                tot_ok += int((logits.detach().argmax(1) == yb).sum())
                seen += len(idx)
                if bar is not None:
                    bar.update(1)
            history["loss"].append(tot_loss / seen)
            history["accuracy"].append(tot_ok / seen)
    if bar is not None:
        bar.close()
    net.eval()
    net.history_ = history
    return net


def _batched_eval(model: nn.Module, X, fn, batch_size: int, device, config) -> np.ndarray:
    X, _ = _check_images(X)
    device = torch.device(device)
    model.to(device, memory_format=_memory_format(device))
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, X.shape[0], batch_size):
                xb = to_tensor(
                    X[start : start + batch_size], device, config, getattr(model, "in_shape", None)
                )
                out.append(fn(xb).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=0)


def _config_for(model: nn.Module, config) -> CNNConfig:
    if isinstance(config, CNNConfig):
        return config
    if isinstance(config, str):
        return CNN_CONFIGS[_check_dataset(config)]
    for name, cls in _NETS.items():
        if type(model) is cls:
            return CNN_CONFIGS[name]
    raise SomlabError("pass config= (a CNNConfig or a data set name) for this network")


def extract_features(
    model: nn.Module,
    X,
    *,
    config=None,
    batch_size: int = 1024,
    device=None,
    with_logits: bool = False,
):
    """``model.features`` of every image, in eval mode (BN running statistics, no dropout),
    in batches; the model's mode is restored afterwards.

    ``X``: images as for :func:`train_cnn`; ``config``: a :class:`CNNConfig` or data set name
    for the pixel scaling (default: the one of the model's class). Returns float32
    ``[n, feature_dim]`` on the CPU, or with ``with_logits`` the pair ``(features, logits)``
    (logits ``[n, n_classes]`` from ``model.classify(features)``, the same forward pass)."""
    device = next(model.parameters()).device if device is None else device
    cfg = _config_for(model, config)
    if not with_logits:
        return _batched_eval(model, X, model.features, batch_size, device, cfg)

    def both(xb):
        f = model.features(xb)
        return torch.cat([f, model.classify(f)], dim=1)

    out = _batched_eval(model, X, both, batch_size, device, cfg)
    d = int(model.feature_dim)
    return np.ascontiguousarray(out[:, :d]), np.ascontiguousarray(out[:, d:])


def cnn_accuracy(model: nn.Module, X, y, *, config=None, batch_size: int = 1024, device=None):
    """Test accuracy of the network's own classifier (eval mode)."""
    device = next(model.parameters()).device if device is None else device
    cfg = _config_for(model, config)
    logits = _batched_eval(model.to(device), X, model, batch_size, device, cfg)
    return float((logits.argmax(1) == np.asarray(y)).mean())
