"""Deprecated (kept for one release): ``rlnas.retraining`` moved to ``rlnas.pipeline.retrain``
(``train_network``) and ``rlnas.pipeline.export`` (``export``, ``load_exported_state``)."""
from .deprecation import warn_moved
from .pipeline.export import (
    EXPORT_FILES,
    EXPORT_FORMAT,
    EXPORT_TOLERANCE,
    export,
    input_spec,
    load_exported_state,
    load_network,
    training_progress,
)
from .pipeline.retrain import (
    TEST_OVERLAP_LIMIT,
    check_test_data,
    evaluate_network,
    resolve_arch,
    train_network,
)

warn_moved("rlnas.retraining", "rlnas.pipeline.retrain and rlnas.pipeline.export")
