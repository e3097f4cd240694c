"""One parameter list for the three relevance maps, with per-model defaults.

scikit-learn reads an estimator's parameters from the signature of its ``__init__``.  Rather
than copying a 30-parameter ``__init__`` into each model, :func:`make_init` builds it from
:data:`PARAMETERS` with the model's own defaults and sets ``__signature__`` so that
``get_params``, ``clone`` and the estimator checks see ordinary keyword parameters.
"""

from __future__ import annotations

import inspect

from ._base import FLAGS

# name -> default shared by every model (model-specific defaults override these).
# The hyper-parameters are setting #17 of a 24-setting Latin-hypercube sweep over the paper's
# Table I ranges (Batch SS-SOM, 6 UCI sets x labels 0/10/100 % x 3 folds, epochs <= 10,
# age_wins <= 5), the best on average across data sets and label fractions (accuracy with
# labels, CE without), rounded to 3 significant digits; see experiments/choose_defaults.py and
# experiments/results/defaults_sweep/.
PARAMETERS = {
    "at": 0.928,
    "lp": 0.00912,
    "beta": 0.406,
    "age_wins": 5.0,
    "eb": 0.044,
    "en": 0.367,
    "s": 0.0942,
    "minwd": 0.13,
    "epochs": 10,
    "epush": 0.971,
    "max_nodes": 200,
    "batch_size": 32,
    **{name: values[0] for name, values in FLAGS.items()},
    "filter_noise": False,
    "count_all_wins": False,
    "compat": None,
    "unlabelled_value": -1,
    "device": "cpu",
    "engine": "auto",
    "random_state": None,
    "verbose": False,
}


def make_init(drop=(), **defaults):
    """An ``__init__`` storing every parameter of PARAMETERS (minus ``drop``) unchanged."""
    values = {k: v for k, v in PARAMETERS.items() if k not in drop}
    values.update(defaults)
    sig = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
            for k, v in values.items()
        ]
    )

    def __init__(self, **params):
        unknown = set(params) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected parameters {sorted(unknown)}")
        for k, v in values.items():
            setattr(self, k, params.get(k, v))

    __init__.__signature__ = sig
    return __init__
