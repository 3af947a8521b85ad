"""Optional TensorBoard logging of a training loop: ``RLNAS_TENSORBOARD=1`` (``RUN/tensorboard``)
or ``=DIR`` (``DIR/<run name>``); per-epoch scalars, with the epoch as the step."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

from .errors import RlnasError
from .files import make_dir, os_error_text

TENSORBOARD_ENV = "RLNAS_TENSORBOARD"
_OFF = ("", "0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def tensorboard_dir(run_dir: Optional[Path]) -> Optional[Path]:
    """Where a run's TensorBoard events go: None when ``$RLNAS_TENSORBOARD`` is unset, empty or
    0/false/no/off (or the loop writes no metrics.csv); ``RUN/tensorboard`` for 1/true/yes/on;
    ``DIR/<run name>`` for any other value DIR, so that ``tensorboard --logdir DIR`` shows each
    run as its own line."""
    value = os.environ.get(TENSORBOARD_ENV, "").strip()
    if run_dir is None or value.lower() in _OFF:
        return None
    run_dir = Path(run_dir)
    if value.lower() in _ON:
        return run_dir / "tensorboard"
    return Path(value).expanduser() / (run_dir.resolve().name or "run")


def _summary_writer():
    """torch's SummaryWriter class, imported only when TensorBoard logging is asked for."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RlnasError(f"{TENSORBOARD_ENV} is set but the tensorboard package is not installed: "
                         "pip install 'rlnas[tensorboard]' (or unset "
                         f"{TENSORBOARD_ENV})") from None
    return SummaryWriter


def check_tensorboard(run_dir: Optional[Path]) -> Optional[Path]:
    """Fail before any work when TensorBoard logging is asked for but cannot be done."""
    where = tensorboard_dir(run_dir)
    if where is not None:
        _summary_writer()
    return where


class _Board:
    """Per-epoch scalars of one training loop: ``<desc>/loss``, ``<desc>/train_acc`` (accuracy
    on the labels trained on: the random labels of an RLNAS supernet), ``<desc>/lr``,
    ``<desc>/images_per_s`` and whatever the epoch callback hands over (the supernet's
    ``<desc>/stability_tau``), with the epoch as the step."""

    KEYS = (("loss", "loss"), ("train_acc", "train_acc"), ("lr", "lr"),
            ("images_per_s", "images_per_s"))

    def __init__(self, writer, desc: str):
        self.writer, self.desc = writer, desc

    def epoch(self, ep: int, row: Dict[str, Any], scalars: Dict[str, float]):
        try:
            for key, tag in self.KEYS:
                if key in row:
                    self.writer.add_scalar(f"{self.desc}/{tag}", float(row[key]), ep)
            for tag, v in scalars.items():
                if v is not None:
                    self.writer.add_scalar(f"{self.desc}/{tag}", float(v), ep)
            self.writer.flush()
        except OSError as exc:
            raise RlnasError(f"cannot write TensorBoard events: {os_error_text(exc)}") from None

    def close(self):
        try:
            self.writer.close()
        except OSError:
            pass  # the events already flushed are kept; a close error must not hide another


def open_tensorboard(spec, first_epoch: int = 1) -> Optional[_Board]:
    """A TensorBoard logger for the loop ``spec`` (a ``rlnas.loop.LoopSpec``) when
    ``$RLNAS_TENSORBOARD`` asks for one (the run is the folder of ``spec.metrics_path``). Events
    of epochs >= ``first_epoch`` that an earlier, interrupted process wrote are purged, so a
    resumed run shows each epoch once."""
    where = check_tensorboard(spec.metrics_path.parent if spec.metrics_path else None)
    if where is None:
        return None
    writer_cls = _summary_writer()
    make_dir(where, "TensorBoard folder")
    try:
        writer = writer_cls(log_dir=str(where), purge_step=first_epoch if first_epoch > 1 else None)
    except OSError as exc:
        raise RlnasError(f"cannot write TensorBoard events to {where}: {os_error_text(exc)}") \
            from None
    return _Board(writer, spec.desc)


# Steps between reads of the losses: on CPU reading a number costs nothing; on a GPU a read each
