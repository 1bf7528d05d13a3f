"""Human-vision (HVS) psychophysics tables: build them from raw trials, load them, prepare fit inputs.

The committed tables live in ``datasets/hvs/<distortion>.csv`` (one per distortion of
:data:`DISTORTIONS`; see ``datasets/hvs/README.md``). They are per-condition aggregates of

- Geirhos et al. 2018 and 2021 (16-AFC object recognition, chance 1/16), from the per-trial file
  ``shared/data/hvs/human_trials.csv.gz``: no-answer trials (``object_response == "na"``) count as
  incorrect;
- Tang et al. 2018 (5-way categorisation, chance 0.2), from ``raw/tang2018/occlusion_trials.csv``:
  images 1-300 only; ``klab325v2`` trials in 5 %-wide visibility bins closed on the right (the
  first bin [0, 5] includes 0), condition = bin centre; ``klab325v3`` whole-image trials as
  condition 100; separately for masked = 0 / 1, pooled over SOA (shared/data README §2.4).

``scripts/build_hvs_tables.py`` rebuilds the committed tables with :func:`build_tables` and
:func:`write_tables`. :func:`load_hvs_table` reads one; :func:`fit_data` turns one into
``(intensity, n_correct, n_trials, guess)`` on the severity-like strength axis of
:mod:`mappings.conversion`, ready for :func:`mappings.fit.fit_psychometric`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from mappings.conversion import HVS_DISTORTIONS, to_strength

__all__ = [
    "DISTORTIONS",
    "CHANCE_BY_STUDY",
    "N_CLASSES_BY_STUDY",
    "CITATIONS",
    "LICENCES",
    "TABLE_COLUMNS",
    "OCCLUSION_COLUMNS",
    "DEFAULT_ROOT",
    "FitData",
    "chance_for_study",
    "load_hvs_table",
    "read_geirhos_trials",
    "read_tang_trials",
    "build_geirhos_tables",
    "build_occlusion_table",
    "build_tables",
    "write_tables",
    "fit_data",
]

#: Distortions with a committed table (file ``datasets/hvs/<name>.csv``).
DISTORTIONS: tuple[str, ...] = (
    "contrast",
    "uniform-noise",
    "low-pass",
    "high-pass",
    "phase-scrambling",
    "rotation",
    "eidolonI",
    "eidolonII",
    "eidolonIII",
    "colour",
    "false-colour",
    "power-equalisation",
    "occlusion",
)
assert set(DISTORTIONS) == set(HVS_DISTORTIONS)

#: Chance level (guess rate) of each study.
CHANCE_BY_STUDY: dict[str, float] = {"geirhos2018": 1 / 16, "geirhos2021": 1 / 16, "tang2018": 0.2}
#: Number of response alternatives of each study.
N_CLASSES_BY_STUDY: dict[str, int] = {"geirhos2018": 16, "geirhos2021": 16, "tang2018": 5}

CITATIONS: dict[str, str] = {
    "geirhos2018": "Geirhos et al. 2018, NeurIPS, Generalisation in humans and deep neural networks",
    "geirhos2021": "Geirhos et al. 2021, NeurIPS, Partial success in closing the gap between human and "
    "machine vision",
    "tang2018": "Tang et al. 2018, PNAS, Recurrent computations for visual pattern completion",
}
LICENCES: dict[str, str] = {
    "geirhos2018": "CC BY 4.0 (LICENSE.txt of github:rgeirhos/generalisation-humans-DNNs)",
    "geirhos2021": "unspecified (see source); human response files carry no licence "
    "(repository code MIT, datasets based on CC BY 4.0 stimuli)",
    "tang2018": "unspecified (see source); no licence file in the repository, cite the paper",
}
_REPOS: dict[str, str] = {
    "geirhos2018": "github:rgeirhos/generalisation-humans-DNNs@0b88343536ec21acc2d635c0e325f827111e149a",
    "geirhos2021": "github:bethgelab/model-vs-human@79ed7cd1d9ac3a114e71b6638f0a98bdd627316c",
    "tang2018": "github:kreimanlab/occlusion-classification@94514806fb90da6f91193e86d97de7653c4a0247",
}

#: Human-readable definition of ``condition`` per distortion.
CONDITION_UNITS: dict[str, str] = {
    "contrast": "nominal contrast c (fraction of full contrast; greyscale image)",
    "uniform-noise": "noise width w: uniform noise in [-w, w] added to a greyscale image at 30% contrast, "
    "pixel range [0, 1]",
    "low-pass": "Gaussian blur std in pixels of the 224 px image (0 = unfiltered)",
    "high-pass": "high-pass filter: image minus Gaussian blur of this std in 224-px pixels "
    "(inf = unfiltered)",
    "phase-scrambling": "phase noise width in degrees",
    "rotation": "rotation angle in degrees",
    "eidolonI": "Eidolon reach (grain 10, coherence 1.0)",
    "eidolonII": "Eidolon reach (grain 10, coherence 0.3)",
    "eidolonIII": "Eidolon reach (grain 10, coherence 0.0)",
    "colour": "binary: colour vs greyscale",
    "false-colour": "binary: true colour vs opponent colour",
    "power-equalisation": "binary: original vs power-equalised amplitude spectrum",
    "occlusion": "percent of the object visible through bubbles (100 - % black); 5%-wide bins closed on "
    "the right, condition = bin centre; 100 = whole image",
}

#: Columns of every Geirhos table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "distortion",
    "study",
    "experiment",
    "condition",
    "condition_label",
    "condition_unit",
    "coherence",
    "stimulus_format",
    "n_trials",
    "n_correct",
    "n_no_response",
    "accuracy",
    "n_subjects",
    "chance",
    "n_classes",
    "median_rt_s",
    "citation",
    "licence",
    "source",
)
#: Columns of the occlusion table, in order.
OCCLUSION_COLUMNS: tuple[str, ...] = (
    "distortion",
    "study",
    "experiment",
    "condition",
    "condition_label",
    "condition_unit",
    "masked",
    "visibility_lo_pct",
    "visibility_hi_pct",
    "mean_visibility_pct",
    "n_trials",
    "n_correct",
    "accuracy",
    "n_subjects",
    "chance",
    "n_classes",
    "citation",
    "licence",
    "source",
)
#: Columns every committed table must have.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "distortion",
    "study",
    "experiment",
    "condition",
    "condition_unit",
    "n_trials",
    "n_correct",
    "accuracy",
    "chance",
    "n_classes",
    "citation",
    "licence",
    "source",
)

#: ``<repo>/datasets/hvs``.
DEFAULT_ROOT: Path = Path(__file__).resolve().parents[1] / "datasets" / "hvs"

_BINARY_ORDER: dict[str, tuple[str, ...]] = {
    "colour": ("colour", "greyscale"),
    "false-colour": ("true-colour", "opponent-colour"),
    "power-equalisation": ("original", "power-equalised"),
}
_ROUND = 6  # decimals of accuracy / median rt in the tables


def chance_for_study(study: str) -> float:
    """Chance level of ``study``; ValueError (listing the known studies) when it has none."""
    try:
        return CHANCE_BY_STUDY[study]
    except (KeyError, TypeError):
        raise ValueError(
            f"study {study!r} has no chance level; known studies: {sorted(CHANCE_BY_STUDY)}"
        ) from None


def _check_distortion(distortion: str) -> str:
    if distortion not in DISTORTIONS:
        raise ValueError(f"distortion must be one of {list(DISTORTIONS)}, got {distortion!r}")
    return distortion


# ------------------------------------------------------------------------------ loading
def _parse_condition(distortion: str, value):
    """Numeric conditions as float (``inf`` kept); binary conditions stay words."""
    if distortion in _BINARY_ORDER:
        return str(value)
    return float(value)


def load_hvs_table(distortion: str, root: str | Path | None = None) -> pd.DataFrame:
    """The committed per-condition table of ``distortion`` (``<root>/<distortion>.csv``).

    ``condition`` is float for numeric distortions (``inf`` for the unfiltered high-pass level)
    and the level word for colour / false-colour / power-equalisation.

    Raises:
        ValueError: unknown distortion (the message lists them).
        FileNotFoundError: the table is missing under ``root``.
    """
    _check_distortion(distortion)
    path = Path(DEFAULT_ROOT if root is None else root) / f"{distortion}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"HVS table {path} not found; rebuild it with scripts/build_hvs_tables.py")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"condition": str})
    df["condition"] = [_parse_condition(distortion, v) for v in df["condition"]]
    return df


# ------------------------------------------------------------------------------ building
def read_geirhos_trials(path: str | Path) -> pd.DataFrame:
    """``human_trials.csv.gz`` with the ``"na"`` answers kept as text."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def read_tang_trials(path: str | Path) -> pd.DataFrame:
    """``raw/tang2018/occlusion_trials.csv``."""
    return pd.read_csv(path)


def _condition_sort_key(distortion: str, condition) -> float:
    if distortion in _BINARY_ORDER:
        return float(_BINARY_ORDER[distortion].index(condition))
    return float(condition)


def _source(study: str, source_files: pd.Series) -> str:
    dirs = sorted({str(Path(f).parent) for f in source_files})
    return f"{_REPOS[study]} " + " ".join(f"{d}/*subject-*.csv" for d in dirs)


def build_geirhos_tables(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-condition tables of every Geirhos distortion from the per-trial data.

    Groups by (study, experiment, condition); ``n_correct`` sums ``correct`` (a no-answer trial has
    ``correct == 0``); ``n_no_response`` counts ``object_response == "na"``; ``median_rt_s`` is the
    median ``rt`` over answered trials.
    """
    required = {"study", "experiment", "distortion", "condition", "condition_label", "coherence", "subj",
                "rt", "object_response", "correct", "stimulus_format", "source_file"}
    missing = sorted(required - set(trials.columns))
    if missing:
        raise ValueError(f"trials is missing the columns {missing}")
    if not set(trials["correct"].unique()) <= {0, 1}:
        raise ValueError("trials['correct'] must be 0/1")
    na = trials["object_response"].astype(str) == "na"
    if bool((trials.loc[na, "correct"] != 0).any()):
        raise ValueError("a no-answer trial is marked correct")
    tables: dict[str, pd.DataFrame] = {}
    for distortion, dtrials in trials.groupby("distortion", sort=False):
        if distortion not in DISTORTIONS:
            raise ValueError(f"unexpected distortion {distortion!r} in trials")
        rows = []
        for (study, experiment, condition), g in dtrials.groupby(
            ["study", "experiment", "condition"], sort=False
        ):
            answered = g["object_response"].astype(str) != "na"
            labels = sorted(set(g["condition_label"].astype(str)))
            formats = sorted(set(g["stimulus_format"].astype(str)))
            coherence = g["coherence"].dropna().unique()
            n = len(g)
            k = int(g["correct"].sum())
            rows.append(
                {
                    "distortion": distortion,
                    "study": study,
                    "experiment": experiment,
                    "condition": _parse_condition(distortion, condition),
                    "condition_label": "|".join(labels),
                    "condition_unit": CONDITION_UNITS[distortion],
                    "coherence": float(coherence[0]) if len(coherence) == 1 else np.nan,
                    "stimulus_format": "|".join(formats),
                    "n_trials": n,
                    "n_correct": k,
                    "n_no_response": int((~answered).sum()),
                    "accuracy": round(k / n, _ROUND),
                    "n_subjects": int(g["subj"].nunique()),
                    "chance": CHANCE_BY_STUDY[study],
                    "n_classes": N_CLASSES_BY_STUDY[study],
                    "median_rt_s": round(float(g.loc[answered, "rt"].median()), 4),
                    "citation": CITATIONS[study],
                    "licence": LICENCES[study],
                    "source": _source(study, g["source_file"]),
                }
            )
        df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        df["_key"] = [_condition_sort_key(distortion, c) for c in df["condition"]]
        df = df.sort_values(["study", "experiment", "_key"], kind="stable").drop(columns="_key")
        tables[distortion] = df.reset_index(drop=True)
    return tables


def build_occlusion_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per-condition occlusion table (Tang et al. 2018) from the decoded per-trial data (see module doc)."""
    required = {"dataset", "subject", "image_id", "correct", "occluded", "visibility_pct", "masked",
                "source_file"}
    missing = sorted(required - set(trials.columns))
    if missing:
        raise ValueError(f"trials is missing the columns {missing}")
    t = trials[trials["image_id"] <= 300]
    rows = []
    for masked in (0, 1):
        tm = t[t["masked"] == masked]
        v2 = tm[(tm["dataset"] == "klab325v2") & tm["visibility_pct"].notna()]
        # Closed on the right: (5(b-1), 5b], with 0 in the first bin.
        bins = np.maximum(np.ceil(v2["visibility_pct"].to_numpy() / 5.0), 1.0).astype(int)
        for b in sorted(set(bins.tolist())):
            g = v2[bins == b]
            lo, hi = 5 * (b - 1), 5 * b
            rows.append(_occlusion_row(g, "klab325v2", 5.0 * b - 2.5, f"visibility {lo}-{hi}%", masked,
                                       float(lo), float(hi)))
        whole = tm[(tm["dataset"] == "klab325v3") & (tm["occluded"] == 0)]
        if len(whole):
            rows.append(_occlusion_row(whole, "klab325v3", 100.0, "whole image (unoccluded)", masked,
                                       100.0, 100.0))
    return pd.DataFrame(rows, columns=list(OCCLUSION_COLUMNS))


def _occlusion_row(g: pd.DataFrame, dataset: str, condition: float, label: str, masked: int,
                   lo: float, hi: float) -> dict:
    n = len(g)
    k = int(g["correct"].sum())
    files = " ".join(sorted(set(g["source_file"].astype(str))))
    return {
        "distortion": "occlusion",
        "study": "tang2018",
        "experiment": dataset,
        "condition": condition,
        "condition_label": label,
        "condition_unit": CONDITION_UNITS["occlusion"],
        "masked": masked,
        "visibility_lo_pct": lo,
        "visibility_hi_pct": hi,
        "mean_visibility_pct": round(float(g["visibility_pct"].mean()), 3),
        "n_trials": n,
        "n_correct": k,
        "accuracy": round(k / n, _ROUND),
        "n_subjects": int(g["subject"].nunique()),
        "chance": CHANCE_BY_STUDY["tang2018"],
        "n_classes": N_CLASSES_BY_STUDY["tang2018"],
        "citation": CITATIONS["tang2018"],
        "licence": LICENCES["tang2018"],
        "source": f"{_REPOS['tang2018']} {files} (trials with image_id <= 300, pooled over SOA)",
    }


def build_tables(shared: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of :data:`DISTORTIONS` from the shared raw data folder (``shared/data/hvs``)."""
    shared = Path(shared)
    geirhos = shared / "human_trials.csv.gz"
    tang = shared / "raw" / "tang2018" / "occlusion_trials.csv"
    for path in (geirhos, tang):
        if not path.is_file():
            raise FileNotFoundError(f"raw HVS file {path} not found")
    tables = build_geirhos_tables(read_geirhos_trials(geirhos))
    tables["occlusion"] = build_occlusion_table(read_tang_trials(tang))
    missing = sorted(set(DISTORTIONS) - set(tables))
    if missing:
        raise ValueError(f"raw data lack the distortions {missing}")
    return {d: tables[d] for d in DISTORTIONS}


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    """Write ``<out>/<distortion>.csv`` for each table (``\\n`` line ends, no index); returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for distortion, df in tables.items():
        _check_distortion(distortion)
        path = out / f"{distortion}.csv"
        df.to_csv(path, index=False, lineterminator="\n")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ fit inputs
class FitData(NamedTuple):
    """Counts on the severity-like strength axis; unpacks as ``(intensity, n_correct, n_trials, guess)``."""

    intensity: np.ndarray
    n_correct: np.ndarray
    n_trials: np.ndarray
    guess: float


def fit_data(
    distortion: str,
    study: str | None = None,
    *,
    experiment: str | None = None,
    masked: int = 0,
    root: str | Path | None = None,
) -> FitData:
    """Counts of one distortion as fit inputs on the strength axis of :func:`mappings.conversion.to_strength`.

    Rows of the selected study (all studies when None) and experiment (all when None) with the
    same strength are pooled by summing their counts (e.g. Geirhos 2018's JPEG and PNG contrast
    runs, or rotation 90 and 270 degrees). Occlusion rows are filtered on ``masked`` (0: no
    backward mask, the default). The guess is the studies' common chance level.

    Raises:
        ValueError: unknown distortion/study, no rows selected, or studies with different chance.
    """
    df = load_hvs_table(distortion, root)
    if study is not None:
        chance_for_study(study)
        df = df[df["study"] == study]
    if experiment is not None:
        df = df[df["experiment"] == experiment]
    if distortion == "occlusion":
        df = df[df["masked"] == masked]
    if df.empty:
        raise ValueError(
            f"no rows of {distortion!r} for study={study!r}, experiment={experiment!r}"
            + (f", masked={masked!r}" if distortion == "occlusion" else "")
        )
    chances = {chance_for_study(s) for s in df["study"].unique()}
    if len(chances) != 1:
        raise ValueError(f"the selected studies have different chance levels {sorted(chances)}")
    x = np.array([to_strength(distortion, c) for c in df["condition"]], dtype=float)
    agg = (
        pd.DataFrame({"x": x, "k": df["n_correct"].to_numpy(), "n": df["n_trials"].to_numpy()})
        .groupby("x", sort=True)
        .sum()
    )
    if not np.all(np.isfinite(agg.index.to_numpy())):
        raise ValueError(f"{distortion} has a non-finite strength")
    return FitData(
        agg.index.to_numpy(dtype=float),
        agg["k"].to_numpy(dtype=np.int64),
        agg["n"].to_numpy(dtype=np.int64),
        chances.pop(),
    )
