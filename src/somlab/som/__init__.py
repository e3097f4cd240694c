"""Classic Kohonen SOMs (online, mini-batch and exact batch training), one map or many at once."""

from ._multi import SOMEnsemble
from ._som import SOM

__all__ = ["SOM", "SOMEnsemble"]
