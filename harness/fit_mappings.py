"""``softbench fit-mappings``: fit a TrivialAugment mapping set for a dataset and plot it.

Sources:

* ``ssim``  - mean SSIM between original and augmented held-out test images per op x signed
  bin (scikit-image-equivalent torch SSIM, bootstrap CI), made non-increasing in severity.
* ``proxy`` - accuracy of a proxy model trained without TrivialAugment, measured on held-out test
  images per op x signed bin, isotonic-smoothed and normalised to [1/K, 1].
* ``hvs``   - psychometric functions fitted by binomial maximum likelihood to the human trials of
  ``datasets/hvs`` (family chosen by AIC, lapse in [0, 0.5]), linked to each op's severity through
  :mod:`mappings.conversion` and normalised with the fitted no-distortion ceiling
  (:class:`mappings.Normalized`). When a distortion was measured by several studies and a
  likelihood-ratio test rejects pooling them (p < 0.05), only the study with the most trials is
  used and named in the op's source (e.g. ``hvs:contrast(geirhos2018)``). Ops and signs without human data use ``fallback``: the per-op
  default of ``mappings.conversion.FALLBACK_OPS`` (``"per-op"``) or one of ``polynomial`` (the
  ``polynomial_custom`` curve; Identity/AutoContrast/Equalize stay hard), ``ssim``, ``proxy``.
  The plots show human accuracy per condition, normalised, with Wilson 95 % intervals and the
  fit's parametric-bootstrap 95 % band.

Measuring (training the proxy, per-op accuracy, SSIM of augmented images) is
:mod:`harness.measure`; fitting, smoothing, normalising and serialising the measured tables is
:mod:`mappings` (``mappings.proxy``, ``mappings.ssim``, ``mappings.fit``).

Writes ``<out_dir>/<name>.json`` (a :class:`mappings.MappingSet`, loadable with
``mappings.from_dict(json.load(...))``, with the source of every op recorded in ``sources``), the
raw table ``<name>_table.csv`` and one PNG per op, ``<name>_<Op>.png``: the measured points with
their 95 % intervals, the fitted curve, and the ``polynomial_chance`` / ``polynomial_custom``
presets for comparison. Without an explicit folder they go to ``datasets/fitted/<dataset>/<name>/``
(:func:`default_out_dir`), the layout of the pipeline's ``proxy_accuracy`` / ``fit_mappings`` stages;
never into the ``mappings/`` package.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.proportion import proportion_confint

import mappings
from harness import measure
from harness.datasets import load_dataset
from harness.grid import FALLBACKS, FITTED_ROOT
from harness.io import atomic_write_bytes, atomic_write_text
from mappings import conversion, hvs
from mappings.fit import compare_pooled, select_family
from mappings.normalize import human_to_confidence
from mappings.ops import TRIVIAL_AUGMENT_WIDE
from mappings.proxy import clean_accuracy, normalise_accuracy, proxy_confidence_table, proxy_mapping_set
from mappings.ssim import ssim_mapping_set

__all__ = ["SOURCES", "FALLBACKS", "MEASURE_ON", "FITTED_DIR", "default_out_dir", "fit_mappings",
           "plot_mapping_curves"]

SOURCES: tuple[str, ...] = ("ssim", "proxy", "hvs")
MEASURE_ON: tuple[str, ...] = ("test", "train-heldout")

#: Where fitted mapping sets go, relative to the working copy's root (the pipeline's folder).
FITTED_DIR = FITTED_ROOT

_OPS = TRIVIAL_AUGMENT_WIDE


def default_out_dir(dataset: str, name: str) -> Path:
    """``datasets/fitted/<dataset>/<name>``: where :func:`fit_mappings` writes when no folder is given."""
    return FITTED_DIR / dataset / name


def _binomial_ci(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return np.asarray(lo), np.asarray(hi)


def plot_mapping_curves(table: pd.DataFrame, mapping_set, out_dir: Path, name: str, num_classes: int,
                        point_col: str, low_col: str, high_col: str, ylabel: str,
                        bands: dict | None = None) -> list[Path]:
    """One PNG per op: points with intervals, the fitted mapping and the polynomial presets."""
    # matplotlib: figures only (allowed lazily, see tests/test_layers.py)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chance = mappings.preset("polynomial_chance", num_classes)
    custom = mappings.preset("polynomial_custom", num_classes)
    paths = []
    grid = np.linspace(0.0, 1.0, 101)
    for op in _OPS.names:
        sub = table[table["op"] == op]
        if sub.empty and bands is None:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        curve_signs = ("+", "-") if op in _OPS.signed else ("",)
        for sign, marker, colour in (("+", "o", "tab:blue"), ("-", "s", "tab:orange"), ("", "o", "tab:blue")):
            part = sub[sub["sign"].fillna("") == sign]
            if not part.empty:
                label = {"+": "measured (+)", "-": "measured (-)", "": "measured"}[sign]
                y = part[point_col].to_numpy(float)
                yerr = np.vstack([y - part[low_col].to_numpy(float), part[high_col].to_numpy(float) - y])
                ax.errorbar(part["severity"], y, yerr=np.clip(yerr, 0, None), fmt=marker, ms=3, color=colour,
                            alpha=0.7, label=label, capsize=1.5)
            if sign in curve_signs:
                mag = 1.0 if sign != "-" else -1.0
                ids = np.full(grid.shape, _OPS.op_id(op))
                fitted = mapping_set(ids, np.full(grid.shape, mag), grid)
                ax.plot(grid, fitted, color=colour, lw=1.8, label=f"fitted {sign}".strip())
        for (band_op, band_sign), (xs, lo, hi) in (bands or {}).items():
            if band_op == op:
                ax.fill_between(xs, lo, hi, color="tab:green", alpha=0.25,
                                label=f"95% band {band_sign}".strip())
        ids = np.full(grid.shape, _OPS.op_id(op))
        ax.plot(grid, chance(ids, np.ones_like(grid), grid), "k--", lw=1, label="polynomial_chance")
        ax.plot(grid, custom(ids, np.ones_like(grid), grid), "k:", lw=1, label="polynomial_custom")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("severity")
        ax.set_ylabel(ylabel)
        src = getattr(mapping_set, "sources", {})
        tag = ", ".join(sorted({v for kk, v in src.items() if kk.rstrip("+-") == op}))
        ax.set_title(f"{op} ({name}, K={num_classes})" + (f"\nsource: {tag}" if tag else ""), fontsize=8)
        ax.legend(fontsize=6, loc="lower left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        path = out_dir / f"{name}_{op}.png"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def fit_mappings(dataset: str, source: str, out_dir: str | Path | None = None, *, name: str | None = None,
                 n_images: int = 500, seed: int = 0, proxy_epochs: int = 10, proxy_run: str | Path | None = None,
                 proxy_n_per_class: int | None = None, data_source: str | None = None,
                 fallback: str = "per-op", n_boot: int = 200, progress: bool = True,
                 proxy_model: str = "smallnet", proxy_overrides: dict | None = None,
                 measure_on: str = "test", fallback_sets: dict | None = None) -> dict:
    """Fit a mapping set from ``source`` for ``dataset`` into ``out_dir``; returns the paths written.

    ``out_dir`` defaults to :func:`default_out_dir` (``datasets/fitted/<dataset>/<name>``).

    ``measure_on`` picks the images the SSIM / proxy-accuracy measurements use: ``"test"`` (held-out
    test images; right for a standalone study of the mappings) or ``"train-heldout"`` (training
    images outside the proxy's ``proxy_n_per_class`` subset; the experiment pipeline uses this, since
    its fitted mappings set the labels of models that are then scored on the test set, which must
    not inform their training).

    ``proxy_model`` / ``proxy_overrides`` (TrainConfig fields such as ``model_kwargs``, ``batch_size``)
    configure the proxy trained for the ``proxy`` source (and the ``proxy`` fallback).
    ``fallback_sets`` (``{"proxy" | "ssim": MappingSet}``) supplies already-fitted sets for the ``hvs``
    fallbacks instead of measuring them again (the pipeline passes its proxy stage's result)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {list(FALLBACKS)}, got {fallback!r}")
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if measure_on not in MEASURE_ON:
        raise ValueError(f"measure_on must be one of {list(MEASURE_ON)}, got {measure_on!r}")
    name = name or source
    out = default_out_dir(dataset, name) if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_dataset(dataset, source=data_source)
    k = test.num_classes
    if measure_on == "test":
        pool_set, pool = test, np.arange(len(test))
    else:
        if proxy_n_per_class is None:
            raise ValueError("measure_on='train-heldout' needs proxy_n_per_class (the proxy's training subset "
                             "per class); the other training images are the measurement pool")
        pool_set = train
        pool = np.setdiff1d(np.arange(len(train)), train.subset_indices(proxy_n_per_class, seed))
        if pool.size == 0:
            raise ValueError(f"proxy_n_per_class={proxy_n_per_class} uses every training image of {dataset}; "
                             "nothing is left to measure on")
    n = min(n_images, pool.size)
    # a seeded random subset: datasets are often stored sorted by class
    idx = np.sort(pool[np.random.default_rng(seed).permutation(pool.size)[:n]])
    images = torch.from_numpy(np.ascontiguousarray(pool_set.images[idx])).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(pool_set.labels[idx])
    kwargs = dict(images=images, labels=labels, k=k, n=n, seed=seed, dataset=dataset, proxy_run=proxy_run,
                  proxy_epochs=proxy_epochs, proxy_n_per_class=proxy_n_per_class, progress=progress,
                  proxy_model=proxy_model, proxy_overrides=proxy_overrides)
    bands = None
    if source == "ssim":
        table, ms, ylabel = _ssim_source(name=name, **kwargs)
    elif source == "proxy":
        table, ms, ylabel = _proxy_source(name=name, **kwargs)
    else:
        table, ms, ylabel, bands = _hvs_source(name=name, fallback=fallback, n_boot=n_boot,
                                               fallback_sets=fallback_sets,
                                               image_size=int(test.images.shape[1]), **kwargs)
    if source != "hvs":
        sources = {op: source for op in _OPS.names if op in {key.rstrip("+-") for key in ms.mappings}}
        ms = mappings.MappingSet(dict(ms.mappings), k, name=name, sources=sources)
    json_path = out / f"{name}.json"
    atomic_write_text(json_path, json.dumps(ms.to_dict(), indent=2) + "\n")
    table_path = out / f"{name}_table.csv"
    atomic_write_text(table_path, table.to_csv(index=False, float_format="%.6g"))
    pngs = plot_mapping_curves(table, ms, out, name, k, "point", "low", "high", ylabel,
                               bands=bands if source == "hvs" else None)
    return {"mapping_set": json_path, "table": table_path, "plots": pngs}


def _ssim_source(*, images, k, n, seed, name, **_):
    table = measure.ssim_op_curves(images, n_images=n, seed=seed)
    ms = ssim_mapping_set(table, k, name=name)
    table = table.assign(point=table["ssim_mean"].clip(1.0 / k, 1.0),
                         low=table["ci_low"].clip(1.0 / k, 1.0), high=table["ci_high"].clip(1.0 / k, 1.0))
    return table, ms, "confidence (= SSIM, floored at 1/K)"


def _proxy_source(*, images, labels, k, seed, name, dataset, proxy_run, proxy_epochs, proxy_n_per_class,
                  progress, proxy_model="smallnet", proxy_overrides=None, **_):
    run = Path(proxy_run) if proxy_run else Path("runs") / f"proxy_{dataset}_seed{seed}"
    measure.train_proxy(dataset, run_dir=run, epochs=proxy_epochs, n_per_class=proxy_n_per_class, seed=seed,
                        progress=progress, model=proxy_model, overrides=proxy_overrides)
    model = measure.load_proxy(run)
    acc = measure.measure_proxy_accuracy(model, images, labels, progress=progress)
    table = proxy_confidence_table(acc, k)
    ms = proxy_mapping_set(table, k, name=name)
    clean = clean_accuracy(acc)
    kk = np.round(table["accuracy"].to_numpy(float) * table["n"].to_numpy(float))
    lo, hi = _binomial_ci(kk, table["n"].to_numpy(float))
    table = table.assign(point=table["confidence_raw"],
                         low=normalise_accuracy(lo, clean, k), high=normalise_accuracy(hi, clean, k))
    return table, ms, "confidence (normalised proxy accuracy)"


def _hvs_data(distortion: str, alpha: float = 0.05):
    """Fit inputs for ``distortion``: all studies pooled, unless a likelihood-ratio test rejects pooling
    (p < ``alpha``); then only the study with the most trials is used (tag ``"(study)"``)."""
    table = hvs.load_hvs_table(distortion)
    studies = sorted(table["study"].unique())
    if len(studies) < 2:
        return hvs.fit_data(distortion), ""
    per_study = {st: tuple(hvs.fit_data(distortion, st)) for st in studies}
    test = compare_pooled(per_study, lapse_bounds=(0.0, 0.5))
    if test.p_value >= alpha:
        return hvs.fit_data(distortion), ""
    biggest = max(studies, key=lambda st: float(np.sum(per_study[st][2])))
    return hvs.fit_data(distortion, biggest), f"({biggest})"


def _hvs_source(*, k, name, fallback, n_boot, image_size, seed, fallback_sets=None, **kwargs):
    fits: dict[str, object] = {}
    chosen: dict[str, mappings.Mapping] = {}
    srcs: dict[str, str] = {}
    rows, bands = [], {}
    fallback_sets: dict[str, object] = dict(fallback_sets or {})
    poly = mappings.Polynomial(0.7, 2.0)

    def fallback_mapping(op: str, sign: str):
        src = fallback
        if src == "per-op":
            src = conversion.FALLBACK_OPS.get(op + sign, conversion.FALLBACK_OPS.get(op, "polynomial"))
        if src == "polynomial":
            return (None if op in _OPS.magnitude_free else poly), "polynomial"
        if src not in fallback_sets:
            maker = _ssim_source if src == "ssim" else _proxy_source
            fallback_sets[src] = maker(k=k, name=src, seed=seed, **kwargs)[1]
        return fallback_sets[src].mapping_for(op, -1.0 if sign == "-" else 1.0), src

    for op in _OPS.names:
        signs = ("+", "-") if op in _OPS.signed else ("",)
        link = conversion.severity_link(op, image_size)
        for sign in signs:
            key = op + sign
            has_human = link is not None and (op in ("Rotate", "TranslateX", "TranslateY") or sign == "-")
            if not has_human:
                mapping, src = fallback_mapping(op, sign)
                if mapping is not None:
                    chosen[key] = mapping
                srcs[key] = src
                continue
            if link.distortion not in fits:
                data, study_tag = _hvs_data(link.distortion)
                sel = select_family(data.intensity, data.n_correct, data.n_trials, guess=data.guess,
                                    lapse_bounds=(0.0, 0.5))
                fit = sel.best
                if fit.family != "weibull" and link.power != 1.0:
                    fit = next(f for f in sel.fits if f.family == "weibull")
                fits[link.distortion] = (fit, data, fit.bootstrap(n_boot=n_boot, seed=seed), study_tag)
            fit, data, boot, study_tag = fits[link.distortion]
            cmap = fit.confidence_mapping(k, link.scale, link.power)
            chosen[key] = cmap
            srcs[key] = f"hvs:{link.distortion}{study_tag}"
            a0 = float(fit.mapping(link.scale, link.power)(0.0))
            sev = (np.asarray(data.intensity, float) / link.scale) ** (1.0 / link.power)
            keep = sev <= 1.0
            lo, hi = _binomial_ci(np.asarray(data.n_correct, float), np.asarray(data.n_trials, float))
            acc = np.asarray(data.n_correct, float) / np.asarray(data.n_trials, float)
            for s_, a_, l_, h_ in zip(sev[keep], acc[keep], lo[keep], hi[keep]):
                rows.append({"op": op, "sign": sign, "severity": s_, "accuracy": a_, "source": srcs[key],
                             "point": human_to_confidence(a_, data.guess, a0, k),
                             "low": human_to_confidence(l_, data.guess, a0, k),
                             "high": human_to_confidence(h_, data.guess, a0, k)})
            grid = np.linspace(0.0, 1.0, 51)
            blo, bhi = boot.confidence_band(link.scale * grid ** link.power)
            bands[(op, sign)] = (grid, human_to_confidence(blo, data.guess, a0, k),
                                 human_to_confidence(bhi, data.guess, a0, k))
    ms = mappings.MappingSet(chosen, k, name=name, sources=srcs)
    table = pd.DataFrame(rows, columns=["op", "sign", "severity", "accuracy", "source", "point", "low", "high"])
    return table, ms, "confidence (normalised human accuracy)", bands

