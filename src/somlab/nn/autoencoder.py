"""The fully connected autoencoder of DEC (Xie et al. 2016) used by DC-SOMRL (SPEC.md §7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers


class DenseAutoencoder(nn.Module):
    """Encoder ``d-500-500-2000-m`` with a sigmoid latent layer (codes in (0, 1)^m, the range
    the SOMRL layer expects), decoder ``m-2000-500-500-d`` with a linear output.

    Parameters
    ----------
    n_input : int
        Input dimension d (784 for 28x28 images).
    n_latent : int
        Latent dimension m.
    hidden : sequence of int, default=(500, 500, 2000)
        Hidden sizes of the encoder; the decoder mirrors them.
    """

    def __init__(self, n_input: int, n_latent: int, hidden: Sequence[int] = (500, 500, 2000)):
        super().__init__()
        if int(n_input) < 1 or int(n_latent) < 1:
            raise ValueError(f"n_input and n_latent must be >= 1, got {n_input}, {n_latent}")
        sizes = [int(n_input), *map(int, hidden), int(n_latent)]
        self.encoder = nn.Sequential(*_mlp(sizes), nn.Sigmoid())
        self.decoder = nn.Sequential(*_mlp(sizes[::-1]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, x_hat)``."""
        z = self.encoder(x)
        return z, self.decoder(z)


__all__ = ["DenseAutoencoder"]
