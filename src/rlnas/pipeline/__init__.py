"""The stages of the method, one module per ``rlnas`` verb, each reading and writing the run
directory (``rlnas.rundir``):

    train     supernet on random labels            -> config.yaml, run.json, labels.npz, ckpt/
    rank      every arch of the space scored        -> ranking.csv
    search    evolution / exhaustive / random       -> result-<name>.json, visited-<name>.csv
    evaluate  scorers vs a benchmark's accuracies   -> evaluation.json / .md, plots/
    check     top / middle / random archs retrained -> check/check.json
    retrain   the found arch, true labels           -> (own folder) ckpt/, eval.csv, retrain.json
    export    a retrained network as a program      -> export/model.pt2, model.pt, export.json

Python users call them through ``rlnas.api`` (``rlnas.train``, ``Run.rank``, ...), which is
also what the command line calls.
"""
