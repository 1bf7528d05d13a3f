"""Training throughput at the hardware's pace: trainer vs bare model, eager vs compiled, fraction of peak.

Run by hand (never in the tests), from the repository root:

    python benchmarks/gpu_epoch.py --device cuda --model wrn28_4 --json /tmp/gpu_epoch.json
    python benchmarks/gpu_epoch.py --device cpu --model smallnet --precision fp32 --n-per-class 52 \\
        --batch-sizes 128 --modes eager default --epochs 3 --steps 8 --threads 1   # CPU check, ~2 min

(On a CPU without native bf16, e.g. AVX2 only, bf16 autocast is emulated and ~10x slower: use fp32 there.)

For every batch size (default 128 and 512) and every mode (``eager`` and the ``torch.compile`` modes
``reduce-overhead``, ``default``, ``max-autotune``; ``--modes`` picks and orders them), in one process:

* **trainer** images/s: :func:`harness.trainer.train` on a CIFAR-10 subset (``--n-per-class``, default
  800 per class = 8,000 images, the subset of the earlier H100 figures), the paper's augmentation (flip,
  soft TrivialAugment, pad-4 crop), bf16 autocast, channels_last, ``drop_last: true`` in every mode (the
  same batches eager and compiled), ``--epochs`` epochs; the steady epoch is the median of the epochs
  after the first (which holds the compilation). images/s = steps x batch / steady epoch seconds.
* **bare** images/s: the same model, the same training step (:class:`harness.trainer._LossStep`: forward,
  soft-target loss, backward, SGD step; compiled the same way, fused SGD on CUDA) on one resident batch of
  real images, no augmentation, no batch gathering, no logging; ``--steps`` timed steps after 3 warm-up
  steps (compilation), with a device synchronisation at both ends.
* **fraction of peak**: images/s x training FLOPs per image / peak. The FLOPs (forward + backward, the
  matmuls and convolutions; the input's gradient is not computed) are counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (WRN-28-4 on 32x32: 5.07 GFLOP per
  image). Peak: ``--peak-tflops`` (default on CUDA 989 TFLOP/s, the dense bf16 peak of an H100 SXM, the
  same for an H200; none on the CPU, where the column stays empty).

Printed: one row per (batch, mode) with trainer and bare images/s, trainer/bare time ratio (goal <= 1.05),
fractions of peak, steady and first epoch seconds; then compiled vs eager (eager epoch / compiled epoch,
> 1 = compiled faster) per batch size, trainer and bare, measured in the same run. ``--json OUT`` writes
everything, rewritten after every configuration (a run cut short keeps what it measured).
``--time-budget S`` starts no new configuration after S seconds (the rest are listed as skipped), so that
the GPU check (``benchmarks/gpu_check.sh``) fits its minutes. Which compile mode is fastest is what this
measures: ``TrainConfig.compile_mode`` defaults to ``reduce-overhead`` until a GPU run says otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.config import COMPILE_MODES, TrainConfig
from harness.datasets import load_dataset
from harness.models import build_model
from harness.run_model import build_run_model, resolve_device
from harness.trainer import _compile_step, _LossStep, _make_optimizer, train

MODES = ("eager",) + COMPILE_MODES
#: dense bf16 peak of an H100 SXM / H200 (TFLOP/s), the default on CUDA
CUDA_PEAK_TFLOPS = 989.0
WARMUP_STEPS = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--model", default="wrn28_4")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-source", default=None, help="raw data folder (default: the usual search, "
                    "../shared/data included)")
    ap.add_argument("--n-per-class", type=int, default=800, help="training images per class for the trainer")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--modes", nargs="+", default=["eager", "reduce-overhead", "default", "max-autotune"],
                    choices=MODES)
    ap.add_argument("--epochs", type=int, default=3, help="trainer epochs per configuration (>= 2)")
    ap.add_argument("--steps", type=int, default=50, help="timed bare steps per configuration")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help=f"peak for the fraction-of-peak columns (default {CUDA_PEAK_TFLOPS:g} on CUDA, none on CPU)")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds; start no configuration after it")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here (JSON)")
    args = ap.parse_args()
    if args.epochs < 2 or args.steps < 1:
        ap.error("--epochs must be >= 2 (the first holds the compilation) and --steps >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peak = args.peak_tflops if args.peak_tflops is not None else (CUDA_PEAK_TFLOPS if device.type == "cuda" else None)

    train_set, _ = load_dataset(args.dataset, source=args.data_source)
    k, (_, h, _, c) = train_set.num_classes, train_set.images.shape
    flops = flops_per_image(args.model, k, c, h)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(device),
              "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "model": args.model, "dataset": args.dataset, "n_train": args.n_per_class * k,
              "precision": args.precision, "epochs": args.epochs, "bare_steps": args.steps,
              "train_gflop_per_image": flops / 1e9, "peak_tflops": peak, "results": [], "skipped": []}
    print(f"{report['machine']} | {device} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"{args.model}: {flops / 1e9:.3f} GFLOP per training image (forward + backward, FlopCounterMode); "
          f"peak {peak if peak else 'n/a'} TFLOP/s; trainer on {report['n_train']} {args.dataset} images")

    t_start = time.perf_counter()
    for batch in args.batch_sizes:
        for mode in args.modes:
            if args.time_budget is not None and time.perf_counter() - t_start > args.time_budget:
                report["skipped"].append({"batch": batch, "mode": mode, "why": "time budget"})
                print(f"batch {batch} {mode}: skipped (time budget {args.time_budget:g} s spent)", flush=True)
                continue
            cfg = bench_config(args, device, batch, mode)
            row = {"batch": batch, "mode": mode}
            torch._dynamo.reset()  # each configuration compiles afresh (the on-disk inductor cache still helps)
            row.update(trainer_figures(cfg))
            torch._dynamo.reset()
            row.update(bare_figures(cfg, train_set, args.steps))
            row["trainer_over_bare"] = row["bare_img_s"] / row["trainer_img_s"]
            for who in ("trainer", "bare"):
                row[f"{who}_frac_peak"] = row[f"{who}_img_s"] * flops / (peak * 1e12) if peak else None
            report["results"].append(row)
            print_row(row, flush=True)
            _write(args.json, report)
    report["compiled_vs_eager"] = compiled_vs_eager(report["results"])
    report["wall_s"] = time.perf_counter() - t_start
    print_summary(report)
    _write(args.json, report)


def bench_config(args: argparse.Namespace, device: torch.device, batch: int, mode: str) -> TrainConfig:
    """The trainer's config for one (batch, mode): the paper's augmentation and optimiser, drop_last."""
    compiled = mode != "eager"
    return TrainConfig.from_dict({
        "dataset": args.dataset, "data_source": args.data_source, "n_per_class": args.n_per_class,
        "model": args.model, "epochs": args.epochs, "batch_size": batch, "lr": 0.1, "momentum": 0.9,
        "weight_decay": 5e-4, "precision": args.precision, "device": device.type, "compile": compiled,
        "compile_mode": mode if compiled else "reduce-overhead", "drop_last": True, "corruptions": False,
        "checkpoint_every": args.epochs,
        "augment": ["flip", {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"},
                    {"kind": "crop", "params": {"padding": 4}}],
    })


def trainer_figures(cfg: TrainConfig) -> dict:
    """Train ``cfg`` in a temporary folder; the steady epoch (median after the first) and images/s."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        train(cfg, run, progress=False)
        wall = time.perf_counter() - t0
        log = pd.read_csv(run / "epochs.csv")
        prov = json.loads((run / "provenance.json").read_text())
    steady = statistics.median(log["time_s"].iloc[1:])
    images = prov["steps_per_epoch"] * cfg.batch_size
    return {"trainer_epoch_s": steady, "first_epoch_s": float(log["time_s"].iloc[0]), "trainer_wall_s": wall,
            "trainer_img_s": images / steady, "images_per_epoch": images, "compiled": prov["compile"]["used"],
            "compile_fallback": prov["compile"]["fallback"], "first_step_s": prov["compile"]["first_step_s"],
            "fused_sgd": prov["fused_sgd"]}


def bare_figures(cfg: TrainConfig, train_set, steps: int) -> dict:
    """Images/s of the bare training step (same model, loss, compilation, optimiser) on one resident batch."""
    device = torch.device(cfg.device)
    k, (_, h, _, c) = train_set.num_classes, train_set.images.shape
    torch.manual_seed(0)
    model = build_run_model(cfg, num_classes=k, in_channels=c, image_size=h).to(device).train()
    loss_step = _LossStep(model, cfg, k)
    step_fn, compiled, _failure = (_compile_step(loss_step, cfg.compile_mode) if cfg.compile
                                   else (loss_step, False, None))
    opt, _sched = _make_optimizer(model, cfg, device)
    images, labels = train_set.subset(cfg.n_per_class, seed=cfg.seed).to_tensors(device)
    x, y = images[:cfg.batch_size].contiguous(), labels[:cfg.batch_size].contiguous()
    conf = torch.full((cfg.batch_size,), 0.9, device=device)
    graphs = compiled and device.type == "cuda"

    def step() -> None:
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss, _logits = step_fn(x, y, conf)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        step()
    _sync(device)
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    return {"bare_img_s": steps * cfg.batch_size / elapsed, "bare_step_ms": 1e3 * elapsed / steps,
            "bare_warmup_s": warmup}


def flops_per_image(model: str, num_classes: int, channels: int, size: int) -> float:
    """Training FLOPs per image (forward + backward of ``model`` on ``channels x size x size``), counted by
    ``FlopCounterMode`` on the meta device (no memory, no compute); matmuls and convolutions only."""
    batch = 2
    with torch.device("meta"):
        net = build_model(model, num_classes, in_channels=channels, image_size=size).train()
        x = torch.rand(batch, channels, size, size)
    with FlopCounterMode(display=False) as counter:
        net(x).float().logsumexp(1).sum().backward()
    return counter.get_total_flops() / batch


def compiled_vs_eager(results: list[dict]) -> dict:
    """``{batch: {mode: {"trainer": eager epoch / compiled epoch, "bare": ...}}}`` (> 1: compiled faster)."""
    out: dict = {}
    for batch in sorted({r["batch"] for r in results}):
        rows = {r["mode"]: r for r in results if r["batch"] == batch}
        if "eager" not in rows:
            continue
        eager = rows["eager"]
        out[str(batch)] = {mode: {"trainer": r["trainer_img_s"] / eager["trainer_img_s"],
                                  "bare": r["bare_img_s"] / eager["bare_img_s"]}
                           for mode, r in rows.items() if mode != "eager"}
    return out


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []
    return f"{len(names)}-core {names[0]}" if names else platform.processor() or platform.machine()


def print_row(row: dict, flush: bool = False) -> None:
    pct = "" if row["trainer_frac_peak"] is None else (
        f" | peak {100 * row['trainer_frac_peak']:5.1f} % / {100 * row['bare_frac_peak']:5.1f} %")
    fallback = f" | FELL BACK TO EAGER: {row['compile_fallback']}" if row["compile_fallback"] else ""
    print(f"batch {row['batch']:4d} {row['mode']:15s} | trainer {row['trainer_img_s']:10,.0f} img/s | "
          f"bare {row['bare_img_s']:10,.0f} img/s | trainer/bare {row['trainer_over_bare']:5.2f}{pct} | "
          f"epoch {row['trainer_epoch_s']:.3f} s (first {row['first_epoch_s']:.1f} s){fallback}", flush=flush)


def print_summary(report: dict) -> None:
    print(f"compiled vs eager (eager time / compiled time, same run; > 1 = compiled faster), {report['device']}:")
    for batch, modes in report["compiled_vs_eager"].items():
        for mode, r in modes.items():
            print(f"  batch {batch:>4} {mode:15s} trainer {r['trainer']:5.2f}x   bare {r['bare']:5.2f}x")
    for s in report["skipped"]:
        print(f"  batch {s['batch']:>4} {s['mode']:15s} skipped ({s['why']})")
    print(f"wall {report['wall_s']:.0f} s")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _write(path: Path | None, report: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
