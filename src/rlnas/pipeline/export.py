"""`rlnas export`: a retrained network as a standalone program (torch.export, TorchScript where
that fails), a state dict, ONNX and an ``export.json`` saying what input it expects and how to
load each file."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from .. import config as config_mod
from ..checkpoint import load_checkpoint, load_model_state
from ..errors import RlnasError
from ..files import (
    atomic_write,
    atomic_write_text,
    claim_output_folder,
    make_dir,
    os_error_text,
    run_lock,
)
from ..rundir import recorded_config
from ..spaces import recorded_space

# what a retraining's checkpoint and an exported model.pt record of the network, beside "model"
NETWORK_FIELDS = ("space", "arch", "model_config", "num_classes")


def load_network(run_dir) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """The retrained network of ``run_dir`` as a plain nn.Module (eval mode) and its metadata."""
    run_dir = Path(run_dir)
    supernet = RlnasError(f"{run_dir} is a supernet run; export takes a retraining directory "
                          f"(rlnas retrain PRESET {run_dir} --out DIR makes one)")
    if not run_dir.is_dir():
        raise RlnasError(f"retraining directory {run_dir} "
                         f"{'is a file' if run_dir.exists() else 'not found'}")
    if not (run_dir / "arch.json").exists():
        if (run_dir / "config.yaml").exists():
            raise supernet
        raise RlnasError(f"{run_dir} is not a retraining run (no arch.json)")
    ckpt = load_checkpoint(run_dir / "ckpt" / "last.pt")
    if "arch" not in ckpt:
        raise supernet
    model = _rebuild_network(ckpt, run_dir / "ckpt" / "last.pt")
    meta = {k: ckpt[k] for k in NETWORK_FIELDS}
    return model, dict(meta, epochs_done=int(ckpt.get("epoch", 0) or 0))


def _rebuild_network(saved: Dict[str, Any], path: Path) -> torch.nn.Module:
    """The network that ``saved`` (a retraining's checkpoint, or an exported model.pt, read
    from ``path``) records, with its weights, in eval mode.

    Raises:
        RlnasError: one line naming ``path``: a field missing or of another type, a user
            space not named again, weights that do not fit the network built now."""
    missing = [k for k in NETWORK_FIELDS + ("model",) if k not in saved]
    if missing:
        raise RlnasError(f"{path} lacks {', '.join(missing)}; it is not a retrained network")
    classes = saved["num_classes"]
    if not isinstance(saved["space"], str) or not isinstance(saved["arch"], str) or \
            not isinstance(saved["model_config"], dict) or isinstance(classes, bool) or \
            not isinstance(classes, int) or classes < 1:
        shown = ", ".join(f"{k} {type(saved[k]).__name__} {saved[k]!r}"[:80]
                          for k in NETWORK_FIELDS)
        raise RlnasError(f"{path} is damaged: it records the network as {shown} (a space and "
                         f"an arch name, a dict of model options, a number of classes >= 1)")
    space = recorded_space(saved["space"], path)
    kwargs = {k: v for k, v in saved["model_config"].items() if k != "drop_path"}
    try:
        model = space.network(space.from_str(saved["arch"]), num_classes=classes, **kwargs)
    except (TypeError, ValueError) as err:  # model options of the wrong kind
        raise RlnasError(f"{path} is damaged: its network does not build from model_config "
                         f"{saved['model_config']!r} ({str(err).splitlines()[0][:100]})") \
            from None
    load_model_state(model, saved["model"], path, saved["space"])
    return model.eval()


EXPORT_FORMAT = "rlnas-export-1"
EXPORT_FILES = ("model.pt", "model.pt2", "model.ts", "model.onnx", "export.json")
# what the in-process checks accept between the rlnas module and an exported program (float32)
EXPORT_TOLERANCE = 1e-4


def load_exported_state(path) -> torch.nn.Module:
    """The network of an exported ``model.pt`` (state dict + space, arch, kwargs) rebuilt as a
    plain module in eval mode; needs rlnas (``model.pt2`` / ``model.ts`` / ``model.onnx`` do
    not)."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise RlnasError(f"cannot read {path}: {os_error_text(exc)}") from None
    except Exception as err:
        raise RlnasError(f"{path} is corrupt or not an rlnas model.pt "
                         f"({str(err).strip()[:100] or type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != "rlnas-network-1":
        raise RlnasError(f"{path} is not an rlnas model.pt (format rlnas-network-1)")
    return _rebuild_network(saved, path)


def input_spec(cfg: Dict[str, Any], size: int, recorded: Optional[Dict[str, Any]] = None
               ) -> Dict[str, Any]:
    """What the retrained network expects as input, per the retraining's data pipeline:
    uint8 RGB images -> float32 NCHW / 255 -> (x - mean) / std per channel (``DeviceLoader.
    _normalise`` for in-memory data; ``imagenet.finish_batch`` for image folders, where the
    official transform does no mean/std normalisation and the torchvision one uses ImageNet's).
    ``recorded``: the retraining's run.json, whose ``mean`` / ``std`` are those of a user's
    own data (datasets ``npz`` and ``folder``: computed on its training images)."""
    from .. import data as data_mod
    from ..imagenet import _normalisation
    d = cfg.get("data", {})
    name = str(d.get("dataset", "")).strip().lower()
    resized = bool(d.get("resolution"))
    if name == "imagenet":
        transform = d.get("transform") or "official"
        norm = _normalisation(transform)
        mean, std = norm if norm else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        prep = (f"an image file decoded to RGB, its short side resized (bilinear) to "
                f"{round(size * 256 / 224)} px ({size} x 256/224), centre-cropped to {size} x "
                f"{size} (the evaluation transform of data.transform={transform})")
    else:
        consts = {"cifar10": (data_mod.CIFAR10_MEAN, data_mod.CIFAR10_STD),
                  "cifar100": (data_mod.CIFAR100_MEAN, data_mod.CIFAR100_STD),
                  "imagenet16-120": (data_mod.IMAGENET16_MEAN, data_mod.IMAGENET16_STD)}
        if name in consts:
            mean, std = consts[name]
        elif name == "digits":  # the demo set: mean/std of its training part, one per image
            dig = data_mod.load_dataset("digits", split="train")
            mean, std = dig.mean, dig.std
        elif name in ("npz", "folder") and (recorded or {}).get("mean") is not None:
            mean, std = recorded["mean"], recorded["std"]
        else:
            raise RlnasError(f"cannot tell the input normalisation of dataset {name!r}")
        prep = (f"a {name} image resized once to {size} x {size} (area averaging, "
                f"data.resolution)" if resized else
                f"a {name} image as stored ({size} x {size}), no resizing or cropping")
    mean = [round(float(m), 6) for m in mean]
    std = [round(float(s), 6) for s in std]
    scaled = all(m == 0 for m in mean) and all(s == 1 for s in std)
    norm_text = ("no mean/std normalisation (the official ImageNet transform)" if scaled else
                 f"then normalised per channel as (x - mean) / std with mean "
                 f"({', '.join(map(str, mean))}) and std ({', '.join(map(str, std))})")
    return {
        "shape": ["N", 3, size, size], "layout": "NCHW", "dtype": "float32", "channels": "RGB",
        "batch": "any N >= 1", "mean": mean, "std": std,
        "expects": (f"RGB, NCHW float32 {size} x {size}: uint8 pixels scaled to [0, 1] (x / 255), "
                    f"{norm_text}"),
        "value_range": ("[0, 1]" if scaled else
                        "[0, 1] before normalisation; after it, per channel c: "
                        "[(0 - mean[c]) / std[c], (1 - mean[c]) / std[c]]"),
        "preprocess": prep, "dataset": name or None,
        "output": "logits, float32 (N, num_classes), before softmax",
    }


def export(run_dir, out_dir=None, onnx: bool = False, image_size: Optional[int] = None):
    """Export the retrained network of ``run_dir`` to ``out_dir`` (default ``RUN/export``):

    - ``model.pt2``: a ``torch.export`` program that loads with torch alone
      (``torch.export.load('model.pt2').module()``); ``model.ts`` (TorchScript,
      ``torch.jit.load``) instead where torch.export fails for the architecture;
    - ``model.pt``: the state dict + what rebuilds the module with rlnas (space, arch, kwargs);
    - with ``onnx``, ``model.onnx`` from torch's current (dynamo) exporter, the legacy one only
      where that fails (needs the `onnx` extra);
    - ``export.json``: the input the network expects (size, normalisation), the files and how to
      load each, the retraining's top-1, the checks made and the versions.

    Everything is built and checked in memory first; each file is written atomically, export.json
    last. Holds the run's lock (a retraining in progress would be exported half-trained).
    Returns the paths written."""
    run_dir = Path(run_dir)
    in_run = out_dir is None  # RUN/export is rlnas's own folder: an interrupted export's files
    out_dir = Path(out_dir or run_dir / "export")
    model, meta = load_network(run_dir)
    claim_output_folder(out_dir, "export.json",
                        lambda m: isinstance(m, dict) and m.get("format") == EXPORT_FORMAT,
                        "export", own_names=EXPORT_FILES if in_run else ())
    with run_lock(run_dir, "export"):
        return _export(run_dir, out_dir, onnx, model, meta, image_size)


def _quiet_exporter():
    """A context that keeps torch's exporters from printing their internal notes (the
    torchvision-op registration log lines, pytree FutureWarnings) on stderr."""
    import contextlib
    import logging
    import warnings

    @contextlib.contextmanager
    def ctx():
        logger = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
                warnings.filterwarnings("ignore", message=".*LeafSpec.*")
                yield
        finally:
            logger.setLevel(level)
    return ctx()


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).abs().max())


def _check_close(what: str, diff: float, ref: torch.Tensor):
    if not diff <= EXPORT_TOLERANCE * max(1.0, float(ref.abs().max())):
        raise RlnasError(f"{what} does not reproduce the network (max abs difference {diff:.3g} "
                         f"on random input); nothing was written")


def _program(model, x) -> Tuple[str, bytes, Dict[str, Any]]:
    """(file name, bytes, export.json entry) of the standalone program: torch.export with a
    dynamic batch, else TorchScript (trace). Checked against ``model`` on another batch size."""
    errors = []
    probe = torch.randn(3, *x.shape[1:])
    with torch.no_grad():
        ref = model(probe)
    try:
        with _quiet_exporter():
            batch = torch.export.Dim("batch", min=1)
            ep = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
            buf = io.BytesIO()
            torch.export.save(ep, buf)
            with torch.no_grad():
                got = torch.export.load(io.BytesIO(buf.getvalue())).module()(probe)
        diff = _max_diff(got, ref)
        _check_close("the torch.export program", diff, ref)
        return "model.pt2", buf.getvalue(), {
            "kind": "torch.export ExportedProgram (eval mode, dynamic batch); needs torch only",
            "load": "model = torch.export.load('model.pt2').module(); logits = model(x)",
            "max_abs_diff": diff, "ep": ep}
    except RlnasError as err:  # exported, but its outputs differ: TorchScript may do better
        errors.append(str(err).replace("; nothing was written", ""))
    except Exception as err:  # an architecture torch.export cannot trace
        errors.append(f"torch.export failed: {type(err).__name__}: "
                      f"{(str(err).strip().splitlines() or [''])[0][:200]}")
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's own deprecation notes
            ts = torch.jit.trace(model, (x,), check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(ts, buf)
            with torch.no_grad():
                got = torch.jit.load(io.BytesIO(buf.getvalue()))(probe)
    except Exception as err:
        raise RlnasError(f"cannot export the network: {errors[0]}; TorchScript failed too: "
                         f"{type(err).__name__}: {str(err).strip()[:200]}") from None
    diff = _max_diff(got, ref)
    _check_close("the TorchScript program", diff, ref)
    return "model.ts", buf.getvalue(), {
        "kind": "TorchScript (torch.jit.trace, eval mode); needs torch only",
        "load": "model = torch.jit.load('model.ts'); logits = model(x)",
        "max_abs_diff": diff, "why": errors[0]}


def _onnx(model, x, ep) -> Tuple[bytes, Dict[str, Any]]:
    """model.onnx from torch's dynamo exporter (from the torch.export program where there is
    one), the legacy TorchScript-based exporter only where that fails; checked with
    onnxruntime where it is installed."""
    try:
        import onnx as onnx_mod  # both exporters need it
    except ImportError:
        raise RlnasError("ONNX export needs the onnx extra: pip install 'rlnas[onnx]'") from None
    entry: Dict[str, Any] = {"load": "sess = onnxruntime.InferenceSession('model.onnx'); "
                                     "logits = sess.run(None, {'image': x.numpy()})[0]",
                             "input_name": "image", "output_name": "logits"}
    data = None
    try:
        with _quiet_exporter():
            batch = torch.export.Dim("batch", min=1)
            prog = torch.onnx.export(ep if ep is not None else model, (x,), None, dynamo=True,
                                     input_names=["image"], output_names=["logits"],
                                     dynamic_shapes=({0: batch},), verbose=False)
            data = prog.model_proto.SerializeToString()
        entry["exporter"] = "torch.onnx.export(dynamo=True)"
    except Exception as err:
        why = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        print(f"warning: the ONNX dynamo exporter failed ({why}); using the legacy "
              f"TorchScript-based exporter", file=sys.stderr)
        import warnings
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # said in export.json instead
            torch.onnx.export(model, (x,), buf, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False)
        data = buf.getvalue()
        entry["exporter"] = (f"legacy TorchScript-based torch.onnx.export(dynamo=False), "
                             f"deprecated: the dynamo exporter failed ({why})")
    entry["opset"] = int(max((o.version for o in onnx_mod.load_from_string(data).opset_import
                              if o.domain in ("", "ai.onnx")), default=0))
    try:
        import onnxruntime as ort
    except ImportError:
        entry["max_abs_diff"] = None
        entry["check"] = "not checked: onnxruntime is not installed"
        return data, entry
    probe = torch.randn(3, *x.shape[1:])
    with torch.no_grad():
        ref = model(probe)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: probe.numpy()})[0])
    diff = _max_diff(got, ref)
    _check_close("the ONNX model (onnxruntime)", diff, ref)
    entry["max_abs_diff"] = diff
    entry["check"] = f"onnxruntime {ort.__version__}, random input of batch 3"
    return data, entry


def _version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def training_progress(run_dir: Path, cfg: Dict[str, Any], epochs_done: int) -> Dict[str, Any]:
    """``{"complete", "epochs_done", "epochs"}`` of a retraining: the epochs of its last.pt
    against those it was configured with (run.json's record, else config.yaml; None where
    neither says). A retraining stopped half-way is exported, but not as a finished one.

    Args:
        run_dir: the retraining.
        cfg: its config.yaml as read (may be {}).
        epochs_done: the epoch of ckpt/last.pt.
    Returns:
        the three fields of export.json."""
    train = (recorded_config(run_dir) or cfg or {}).get("train")
    epochs = train.get("epochs") if isinstance(train, dict) else None
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
    return {"complete": None if epochs is None else epochs_done >= epochs,
            "epochs_done": epochs_done, "epochs": epochs}


def _export(run_dir: Path, out_dir: Path, onnx: bool, model, meta, image_size):
    meta = dict(meta)
    epochs_done = meta.pop("epochs_done", 0)
    recorded, size, cfg = _recorded(run_dir, image_size)
    why = "the run has no readable config.yaml"
    try:
        spec = input_spec(cfg, size, recorded) if cfg else None
    except RlnasError as err:  # e.g. the demo set without scikit-learn: export all the same
        spec, why = None, str(err)
    progress = training_progress(run_dir, cfg, epochs_done)
    if progress["complete"] is False:
        print(f"note: {run_dir} is retrained for {epochs_done} of its {progress['epochs']} "
              f"epochs (stopped half-way); exporting those weights, export.json says so "
              f"(complete: false)", file=sys.stderr)
    make_dir(out_dir, "output folder")
    retrained = _retraining_summary(run_dir)
    # everything is built and checked in memory before any file is touched: a failure then
    # leaves an earlier export intact, and a full disk is an OSError of the write (torch's
    # stream writer reports it as an obscure RuntimeError, "basic_ios::clear")
    model = model.float().eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)  # batch 2: a batch of 1 would fix the batch size
    prog_name, prog_bytes, prog_entry = _program(model, x)
    ep = prog_entry.pop("ep", None)
    onnx_bytes = onnx_entry = None
    if onnx:
        onnx_bytes, onnx_entry = _onnx(model, x, ep)
    buf = io.BytesIO()
    torch.save(dict(meta, format="rlnas-network-1", image_size=size, model=model.state_dict()),
               buf)
    files = {prog_name: prog_entry,
             "model.pt": {"kind": "state dict + space, arch, model kwargs (format "
                                  "rlnas-network-1); rebuilding the module needs rlnas",
                          "load": "model = rlnas.pipeline.export.load_exported_state('model.pt')",
                          "state_dict": "torch.load('model.pt', weights_only=True)['model']"}}
    if onnx:
        files["model.onnx"] = onnx_entry
    manifest = {
        "format": EXPORT_FORMAT, "space": meta["space"], "arch": meta["arch"],
        "num_classes": int(meta["num_classes"]), "model_config": meta["model_config"],
        "mode": "eval: BatchNorm uses its running statistics; dropout, drop-path and the "
                "DARTS auxiliary head are off",
        "input": spec or {"shape": ["N", 3, size, size], "layout": "NCHW", "dtype": "float32",
                          "expects": f"unknown normalisation: {why}"},
        **progress,
        "files": files, "retraining": retrained, "run": str(run_dir),
        "versions": {"rlnas": _version("rlnas"), "torch": torch.__version__,
                     "onnx": _version("onnx") if onnx else None},
    }
    return _write_export(out_dir, buf, prog_name, prog_bytes, onnx_bytes if onnx else None,
                         manifest)


def _recorded(run_dir: Path, image_size) -> tuple:
    """(run.json, the export's image size, the raw saved config or {}) of a retraining: only
    the config's data section is read, and an unreadable config is {}."""
    try:
        recorded = json.loads((run_dir / "run.json").read_text())
        size = image_size or int(recorded["image_size"])
    except (ValueError, KeyError, TypeError):
        raise RlnasError(f"{run_dir / 'run.json'} is corrupt (no image_size)") from None
    try:  # the raw saved config: only its data section is read
        cfg = config_mod.load_yaml(run_dir / "config.yaml")
        cfg = cfg if isinstance(cfg, dict) and isinstance(cfg.get("data"), dict) else {}
    except Exception:
        cfg = {}
    return recorded, size, cfg


def _retraining_summary(run_dir: Path) -> Optional[Dict[str, Any]]:
    """export.json's ``retraining``: the test accuracy of retrain.json (None without one)."""
    if not (run_dir / "retrain.json").exists():
        return None
    try:
        r = json.loads((run_dir / "retrain.json").read_text())
        return {"top1_last": r["last"]["top1"], "top5_last": r["last"]["top5"],
                "epoch_last": r["last"]["epoch"], "epochs": r["epochs"],
                "top1_best": r["best"]["top1"], "epoch_best": r["best"]["epoch"],
                "note": "the exported weights are those of the last epoch "
                        "(ckpt/last.pt); top-1/top-5 in % on the test split"}
    except (ValueError, KeyError, TypeError):
        return None


def _write_export(out_dir: Path, buf: io.BytesIO, prog_name: str, prog_bytes: bytes,
                  onnx_bytes: Optional[bytes], manifest: Dict[str, Any]) -> List[str]:
    """The export's files, each written atomically (export.json last), and the stale program of
    the other kind removed; the paths written."""
    atomic_write(out_dir / "model.pt", lambda tmp: Path(tmp).write_bytes(buf.getbuffer()))
    written = [str(out_dir / "model.pt")]
    atomic_write(out_dir / prog_name, lambda tmp: Path(tmp).write_bytes(prog_bytes))
    written.append(str(out_dir / prog_name))
    if onnx_bytes is not None:
        atomic_write(out_dir / "model.onnx", lambda tmp: Path(tmp).write_bytes(onnx_bytes),
                     suffix=".onnx")
        written.append(str(out_dir / "model.onnx"))
    atomic_write_text(out_dir / "export.json", json.dumps(manifest, indent=2) + "\n")
    written.append(str(out_dir / "export.json"))
    stale = out_dir / ("model.ts" if prog_name == "model.pt2" else "model.pt2")
    try:  # the other program kind, left by an earlier export, would contradict export.json
        stale.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RlnasError(f"cannot remove the stale {stale}: {os_error_text(exc)}") from None
    return written
