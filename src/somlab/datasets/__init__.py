"""Datasets for somlab: file readers, the bundled UCI folds of the SS-SOM papers, MNIST and
Fashion-MNIST, and scikit-learn's toy sets.

File readers (:func:`load_file`) return features in the file's precision (float64 for text,
ARFF and Parquet; a ``.npy`` array's own float32 or float64) and never change the number of
rows; the bundled sets (UCI, MNIST subset, toy) are float32. Labels are int64, with ``-1`` for
unlabelled samples (scikit-learn's semi-supervised convention). Bad input raises
:class:`~somlab.DataError` with a one-line message.
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
