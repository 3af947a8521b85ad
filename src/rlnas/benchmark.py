"""Deprecated (kept for one release): ``rlnas.benchmark`` was split into ``rlnas.tables`` (the
NB201 table), ``rlnas.correlation`` and ``rlnas.plots``."""
from .correlation import correlation_report
from .deprecation import warn_moved
from .files import write_json_atomic
from .plots import scatter_figure, scatter_plot, tau_over_training_figure, tau_over_training_plot
from .spaces.nb201 import nb201_disconnected
from .tables import ACCURACY_COLUMNS, EXTRA_COLUMNS, NB201Table, load_nb201_table

warn_moved("rlnas.benchmark", "rlnas.tables, rlnas.correlation and rlnas.plots")
