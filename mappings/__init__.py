"""Confidence mappings: augmentation severity in [0, 1] -> label confidence of the true class.

- :class:`Mapping`: base class (callable on floats, numpy arrays, torch tensors; JSON round trip).
- :class:`Polynomial`, :class:`Table`, :class:`Psychometric`: the mapping families.
- :class:`MappingSet`: per-TrivialAugment-op mappings with the 1/K floor.
- :func:`preset` / :data:`PRESETS`: the reference code's TA mappings (METHOD.md §3).
- :func:`erasing_mapping`, :func:`crop_mapping`, :func:`noise_mapping`: single-stage mappings.
- :class:`Normalized`, :func:`human_to_confidence`: human accuracy -> confidence (chance -> 1/K,
  ceiling -> 1); fitting lives in :mod:`mappings.fit`, tables in :mod:`mappings.hvs`.
- :func:`from_dict`: rebuild any of the above from its ``to_dict()``.
"""

from mappings.base import Mapping, from_dict
from mappings.mapping_set import MappingSet
from mappings.normalize import Normalized, human_to_confidence
from mappings.polynomial import Polynomial
from mappings.presets import PRESETS, crop_mapping, erasing_mapping, noise_mapping, preset
from mappings.psychometric import Psychometric
from mappings.table import Table

__all__ = [
    "Mapping",
    "Polynomial",
    "Table",
    "Psychometric",
    "MappingSet",
    "preset",
    "PRESETS",
    "from_dict",
    "erasing_mapping",
    "crop_mapping",
    "noise_mapping",
    "Normalized",
    "human_to_confidence",
]
