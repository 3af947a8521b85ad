"""Deprecated (kept for one release): ``rlnas.check`` moved to ``rlnas.pipeline.check``."""
from .deprecation import warn_moved
from .pipeline.check import (
    BOOTSTRAP,
    GROUPS,
    MIN_ARCHS,
    SAMPLE_SIZE,
    check_run,
    format_report,
    load_check_data,
    pick_archs,
    ranked_archs,
    retrain_arch,
    verdict,
)

warn_moved("rlnas.check", "rlnas.pipeline.check")
