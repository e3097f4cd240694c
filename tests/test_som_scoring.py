"""SOM.score is -QE; metrics.make_som_scorer weighs QE against TE (issue 18, point 6)."""

import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from somlab import SOM
from somlab.metrics import make_som_scorer, som_score

SIGMAS = [0.3, 1.0, 3.0]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((300, 2))


def _search(X, scoring):
    # random init: a small sigma never unfolds the map (TE 0.87 at sigma 0.3, 0 at 3)
    som = SOM((6, 6), mode="online", epochs=3, init="random", random_state=0)
    return GridSearchCV(som, {"sigma": SIGMAS}, scoring=scoring, cv=3).fit(X)


def test_default_score_picks_the_smallest_sigma_and_the_scorer_does_not(X):
    plain = _search(X, None)
    assert plain.best_params_["sigma"] == SIGMAS[0]  # -QE: the folded map wins
    folded = plain.best_estimator_
    assert folded.topographic_error(X) > 0.3
    weighed = _search(X, make_som_scorer(te_weight=1.0))
    assert weighed.best_params_["sigma"] > SIGMAS[0]
    assert weighed.best_estimator_.topographic_error(X) < folded.topographic_error(X) / 2
    # with te_weight=0 the ranking is the relative QE: the default's choice again
    assert _search(X, make_som_scorer(te_weight=0)).best_params_["sigma"] == SIGMAS[0]


def test_som_score_formula(X):
    som = SOM((4, 4), random_state=0).fit(X)
    qe0 = np.linalg.norm(X - X.mean(0), axis=1).mean()
    want = -(som.quantization_error(X) / qe0 + 2.5 * som.topographic_error(X))
    assert som_score(som, X, te_weight=2.5) == pytest.approx(want)
    scorer = pickle.loads(pickle.dumps(make_som_scorer(2.5)))
    assert scorer(som, X) == pytest.approx(want)
    one = SOM((1, 1)).fit(X)  # no TE on a one-node map: the relative QE alone, about 1
    assert som_score(one, X) == pytest.approx(-1.0, rel=1e-5)
    for bad in (-1, "a", True, float("nan")):
        with pytest.raises(ValueError, match="te_weight"):
            make_som_scorer(bad)
