"""Deprecated (kept for one release): ``rlnas.engine`` was split into ``rlnas.loop`` (the training
loop), ``rlnas.distributed`` (devices, torchrun), ``rlnas.tensorboard``, ``rlnas.rundir`` (the run
directory, ``Run``, ``open_run``; ``Run.cfg`` is ``Run.config`` now),
``rlnas.data.prepare_training_data`` and ``rlnas.pipeline.train`` (``train_supernet``)."""
from .data import prepare_training_data
from .deprecation import warn_moved
from .distributed import (
    CHANNELS_LAST,
    Dist,
    autocast_dtype,
    check_parallel,
    init_distributed,
    resolve_device,
)
from .loop import (
    CPU_CHECK_EVERY,
    CUDA_CHECK_EVERY,
    LoopSpec,
    cosine_lr,
    learning_rate,
    linear_lr,
    make_optimizer,
    run_loop,
    start_or_resume,
    warmup_linear_lr,
)
from .pipeline.train import StabilityStop, train_supernet, training_variant
from .rundir import (
    Run,
    check_recorded_config,
    check_run_dir,
    model_meta,
    open_run,
    read_run_info,
    recorded_config,
)
from .tensorboard import TENSORBOARD_ENV, check_tensorboard, open_tensorboard, tensorboard_dir

warn_moved("rlnas.engine", "rlnas.loop, rlnas.distributed, rlnas.rundir, rlnas.pipeline.train")
