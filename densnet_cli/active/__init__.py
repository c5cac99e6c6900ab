"""``densnet active-learn``: grow a dataset where a committee of models disagrees.

One round: train a committee (:mod:`~densnet_cli.active.committee`) → run Langevin MD with the
committee mean and record its disagreement (:mod:`~densnet_cli.active.exploration`) → pick the
frames it disagrees on most (:mod:`~densnet_cli.active.selection`) → label them with
``fit-density`` → record uncertainty and true errors (:mod:`~densnet_cli.active.report`).
:mod:`~densnet_cli.active.loop` runs rounds until the disagreement falls below a threshold, and
resumes a killed run from the files it left.
"""
