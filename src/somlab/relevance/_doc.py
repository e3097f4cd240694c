"""Parameter documentation shared by the three relevance maps."""

PARAMS = """
    The defaults of at ... epush come from a sweep (24 Latin-hypercube settings over the
    paper's Table I, six UCI sets, 0/10/100 % labels, 3 folds): the setting best on average
    across data sets and label fractions.  See experiments/results/defaults_sweep/table2.md.

    at : float, default={at}
        Activation threshold a_t: a sample whose winner's activation is below it is novel
        (a node is inserted) or noise at prediction.
    lp : float, default={lp}
        Lowest cluster percentage: at the end of each window, nodes that won fewer than
        ``lp * window`` samples are removed.
    beta : float, default={beta}
        Relevance rate (dsbeta): speed of the moving average of distances.
    age_wins : float, default={age_wins}
        Window length as a multiple of the number of training samples N.
    eb : float, default={eb}
        Winner learning rate e_b.
    en : float, default={en}
        Neighbour learning rate as a multiple of ``eb`` (e_n = en * eb).
    s : float, default={s}
        Relevance smoothness (eps_ds), the slope of the logistic relevance K3.
    minwd : float, default={minwd}
        Connection threshold on the distance between relevance vectors (K5).
    epochs : int, default={epochs}
        Organisation passes over the data (each a fresh permutation), followed by the
        convergence phase (``convergence="cpp"``).
    epush : float, default={epush}
        Wrong-winner (push) rate as a multiple of ``eb``.
    max_nodes : int, default={max_nodes}
        Capacity of the map.  The node tensors are allocated at this size, the connection
        matrix at its square (``max_nodes**2`` bytes: 2.5 GB for 50,000 nodes).
    distance, conn_metric, count_unit, unsup_insert, capacity, conflict_update,
    labelled_conflict, connection_refresh, convergence, label_fallback, init, sampling,
    unsup_threshold, clone_wins : str
        The rule variants of SPEC.md §5; the first value listed there is the default.
    filter_noise : bool
        Predict −1 (and cluster −1) for samples whose winner's activation is below ``at``.
    count_all_wins : bool, default=False
        C++ LARFDSSOM's win counting for low-activation samples.
    compat : {{None, "reference", "cpp_sssom", "cpp_larfdssom"}}, default=None
        Presets that reproduce the authors' PyTorch code ("reference"), C++ SS-SOM or C++
        LARFDSSOM (SPEC.md §4-§5); a preset overrides the flags it names.
    unlabelled_value : int, default=-1
        Label that marks unlabelled samples in ``y`` besides −1 (the papers' files use 999).
        In string or object labels, ``"-1"``, its string form and ``None`` mark them too.
    device : str, default="cpu"
    engine : {{"auto", "compiled", "torch"}}, default="auto"
        Training engine: "compiled" (the Cython kernel, CPU only), "torch" (any device, every
        flag) or "auto": the compiled one on the CPU when it implements the flags, else torch
        (on the CPU with an EngineFallbackWarning naming the flags).
    random_state : int or None
        Seeds the one generator behind sample order and random initialisation.
    verbose : bool, default=False
"""

ATTRIBUTES = """
    Attributes
    ----------
    prototypes_ : ndarray (n_nodes, n_features)
    relevances_ : ndarray (n_nodes, n_features)
        Per-node relevance of each feature, in [0, 1].
    distance_averages_ : ndarray (n_nodes, n_features)
    node_classes_ : ndarray (n_nodes,)
        Class of each node (−1 = unlabelled node).
    adjacency_ : ndarray (n_nodes, n_nodes) of bool
        The node graph (K5).
    n_nodes_ : int
    classes_ : ndarray
        Labels seen in ``fit``.
    history_ : dict
        Nodes after each epoch, insertions, removals and windows.
    cluster_centers_ : ndarray (n_clusters, n_features)
        Only after a fit with no label and the default Table I parameters
        (relevance/_clusters.py): the merged clusters' row means; ``predict`` and
        ``predict_cluster`` give each row its nearest centre's index (−1 for noise).
    node_clusters_ : ndarray (n_nodes,)
        Same condition: the cluster most of each node's training rows fall in (for display).
    cluster_scores_ : dict
        Same condition: the gap statistic of each number of clusters tried on the kept map.
    cluster_at_ : float
        Same condition: the ``at`` of the kept map (the default, 0.95 or 0.97).
"""

DECISION = """
    decision : {{"auto", "vote", "map", "nodes", "knn1", "knn3", "knn7", "spread"}}, default="auto"
        How a fitted map assigns classes.  ``"map"`` is the paper's rule (the winner's class,
        else the most activated labelled node).  ``"nodes"``: node class distributions from
        the labelled samples each node won, spread over the node graph to the nodes that
        won none (Herrmann & Ultsch's label propagation on the map).  ``"knn<k>"``: the
        distance-weighted vote of the k nearest labelled training rows (the map keeps them
        as labelled prototypes).  ``"spread"``: label spreading as in scikit-learn's
        LabelSpreading (kNN kernel, 7 neighbours, alpha 0.2) on the training rows, new rows
        taking the mean spread distribution of their 7 nearest training rows.  ``"vote"``:
        the weighted mean of the ``"spread"`` (2/3), ``"map"`` (1/6) and ``"knn3"`` (1/6)
        distributions.  ``"auto"`` (beyond the paper): when every Table I hyper-parameter
        (at ... epush) keeps its default and ``compat`` is None, the rule among
        ``candidates``: with one candidate (the default, ``"vote"``) that rule; with several,
        the one with the best mean accuracy in a stratified ``cv``-fold cross-validation on
        the labelled training rows (each fold refits the map with the held-out labels
        hidden; the test data never enter; with fewer than 3 labelled rows in some class,
        ``"vote"``).  Any Table I value other than its default, or any ``compat``, means
        ``"map"``, so the paper's model and its reproductions are unchanged (a value equal
        to the default counts as the default).  Cost of the default: the kNN
        graph of the training rows and one spreading (median fit + predict 0.03 s a UCI
        fold, 1.2-2.3 s CPU on 10,000 x 64; cross-validating all rules costs ``cv`` more map
        fits).  Measured in benchmarks/RESULTS.md ("Relevance-map default vote
        reweighted"): mean accuracy over six UCI sets and eight scikit-learn sets against
        1-NN on the labelled rows and LabelSpreading.
    candidates : sequence of str or None, default=None
        The rules ``"auto"`` chooses among (None: ``("vote",)``, the best on the design
        data; e.g. ``candidates=("vote", "map", "nodes", "knn1", "knn3", "knn7", "spread")``
        cross-validates them all; ties go to the earlier one).
    cv : int, default=3
        Folds of that cross-validation (fewer when a class has fewer labelled rows).
"""
