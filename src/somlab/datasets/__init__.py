"""Datasets for somlab: file readers, the bundled UCI folds of the SS-SOM papers, MNIST and
Fashion-MNIST, and scikit-learn's toy sets.

Every loader returns float32 features and int64 labels, with ``-1`` for unlabelled samples
(scikit-learn's semi-supervised convention), and raises :class:`~somlab.DataError` with a
one-line message on bad input.
"""

from ._images import load_fashion_mnist, load_mnist, load_mnist_subset, pixel_rows
from ._readers import load_file, read_arff, read_csv, read_npy, read_npz
from ._toy import TOY_DATASETS, list_datasets, load_toy
from ._uci import LABELLED_FRACTIONS, UCI_DATASETS, load_sssom_params, load_uci, uci_folds

__all__ = [
    "LABELLED_FRACTIONS",
    "TOY_DATASETS",
    "UCI_DATASETS",
    "list_datasets",
    "load_fashion_mnist",
    "load_file",
    "load_mnist",
    "load_mnist_subset",
    "load_sssom_params",
    "load_toy",
    "load_uci",
    "pixel_rows",
    "read_arff",
    "read_csv",
    "read_npy",
    "read_npz",
    "uci_folds",
]
