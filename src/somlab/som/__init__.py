"""Classic Kohonen SOMs (online, mini-batch and exact batch training)."""

from ._som import SOM

__all__ = ["SOM"]
