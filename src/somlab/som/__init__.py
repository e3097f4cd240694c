"""Classic Kohonen SOMs (online, mini-batch and exact batch training), one map or many at once,
and a classifier and a regressor read off a trained map."""

from ._multi import SOMEnsemble
from ._som import SOM
from ._supervised import SOMClassifier, SOMRegressor

__all__ = ["SOM", "SOMClassifier", "SOMEnsemble", "SOMRegressor"]
