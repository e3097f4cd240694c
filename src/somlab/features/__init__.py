"""CNN features for the image experiments of the Batch SS-SOM paper (seed 000 §V-D, Table III).

* :mod:`~somlab.features.cnn` -- the three networks (:class:`MNISTNet`, :class:`FashionNet`,
  :class:`SVHNNet`), :func:`train_cnn` and :func:`extract_features` (eval mode, batched);
* :mod:`~somlab.features.cache` -- :class:`FeatureCache`, extracted features as ``.npz``
  keyed by data set, protocol, label fraction, seed and a configuration hash;
* :mod:`~somlab.features.svhn` -- :func:`load_svhn` (the official ``.mat`` files).
"""

from .cache import FeatureCache, cache_key, config_hash, default_cache_dir
from .cnn import (
    CNN_CONFIGS,
    CNNConfig,
    FashionNet,
    MNISTNet,
    SVHNNet,
    build_cnn,
    cnn_accuracy,
    extract_features,
    to_tensor,
    train_cnn,
)
from .svhn import SVHN_FILES, load_svhn

__all__ = [
    "CNN_CONFIGS",
    "CNNConfig",
    "FashionNet",
    "FeatureCache",
    "MNISTNet",
    "SVHNNet",
    "SVHN_FILES",
    "build_cnn",
    "cache_key",
    "cnn_accuracy",
    "config_hash",
    "default_cache_dir",
    "extract_features",
    "load_svhn",
    "to_tensor",
    "train_cnn",
]
