"""Several WRN-28-4 runs packed on one GPU: aggregate images/s against one run's, at 1, 2, 4 runs per GPU.

Run by hand on a GPU machine (benchmarks/gpu_check.sh calls it):
    python benchmarks/gpu_packing.py --config benchmarks/gpu_wrn.yaml --packings 1 2 4 --epochs 3 [--json OUT]

For each packing k, k worker processes of the local executor's kind (spawn context, each pinned to GPU 0
with ``CUDA_VISIBLE_DEVICES``, ``threads_per_run`` CPU threads) start together and each trains the config
(``harness.trainer.train``, the real training loop) for ``--epochs`` epochs on the same data with its own
seed. Per run, the steady throughput is its training images / the seconds of its epochs after the first
(compilation, warm-up); the aggregate is their sum, since the runs overlap. Reported: aggregate images/s,
aggregate / one run's (the goal is >= 2.5x at 4 runs per GPU), peak GPU memory per run, and the largest
packing that still fit (a packing that runs out of memory is reported as such, not as a slow one).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from harness.config import load_config
from harness.trainer import train


def _pin(threads: int) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("PACK_GPU", "0")
    torch.set_num_threads(threads)


def _one_run(config_path: str, seed: int, epochs: int, data_source: str | None, out: str, compile_: str) -> dict:
    config = load_config(config_path)
    config = replace(config, seed=seed, epochs=epochs, compile={"true": True, "false": False}.get(compile_, compile_),
                     **({"data_source": data_source} if data_source else {}))
    t0 = time.perf_counter()
    try:
        train(config, out, progress=False)
    except torch.cuda.OutOfMemoryError as exc:
        return {"seed": seed, "oom": True, "error": str(exc).splitlines()[0]}
    log = pd.read_csv(Path(out) / "epochs.csv")
    prov = json.loads((Path(out) / "provenance.json").read_text())
    n = int(prov["num_train"])
    steady_s = float(log["time_s"].iloc[1:].sum()) if len(log) > 1 else float(log["time_s"].sum())
    steady_images = n * max(1, len(log) - 1)
    return {"seed": seed, "oom": False, "images_per_s": steady_images / steady_s, "wall_s": time.perf_counter() - t0,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="benchmarks/gpu_wrn.yaml")
    ap.add_argument("--data-source", default="", help="the config's data_source (default: the prepared dataset, as gpu_check.sh makes it)")
    ap.add_argument("--packings", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    ap.add_argument("--compile", choices=("auto", "true", "false"), default="false",
                    help="the runs' compile setting (default false: each packed run would compile on its own, "
                         "minutes of GPU time; the packing ratio of compiled runs is expected to be lower)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    source = args.data_source if args.data_source and Path(args.data_source).exists() else None
    results, single = {}, None
    with tempfile.TemporaryDirectory(prefix="softbench-pack-") as tmp:
        for k in args.packings:
            ctx = mp.get_context("spawn")
            t0 = time.perf_counter()
            with ProcessPoolExecutor(k, mp_context=ctx, initializer=_pin, initargs=(args.threads,)) as pool:
                futs = [pool.submit(_one_run, args.config, seed, args.epochs, source, f"{tmp}/k{k}-s{seed}",
                                    args.compile)
                        for seed in range(k)]
                runs = [f.result() for f in futs]
            wall = time.perf_counter() - t0
            if any(r["oom"] for r in runs):
                results[k] = {"oom": True, "wall_s": wall}
                print(f"runs_per_gpu={k}: OUT OF MEMORY ({[r['error'] for r in runs if r['oom']][0]})", flush=True)
                break
            agg = sum(r["images_per_s"] for r in runs)
            single = single or agg
            results[k] = {"aggregate_images_per_s": agg, "per_run_images_per_s": [r["images_per_s"] for r in runs],
                          "ratio_vs_one_run": agg / single, "peak_mem_gib_per_run": max(r["peak_mem_gib"] for r in runs),
                          "wall_s": wall}
            print(f"runs_per_gpu={k}: aggregate {agg:,.0f} img/s = {agg / single:.2f}x one run; per run "
                  f"{', '.join(format(r['images_per_s'], ',.0f') for r in runs)} img/s; peak "
                  f"{results[k]['peak_mem_gib_per_run']:.1f} GiB per run; wall {wall:.0f} s", flush=True)
    fits = [k for k, r in results.items() if not r.get("oom")]
    print(f"largest packing that fit: {max(fits) if fits else 'none'} runs per GPU")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "epochs": args.epochs, "compile": args.compile,
                                               "results": results},
                                              indent=2))


if __name__ == "__main__":
    main()
