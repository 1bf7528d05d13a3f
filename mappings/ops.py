"""Op vocabularies: the key space of per-op confidence functions, as plain data.

Rule: an op's **name and signedness** are the key space of confidence functions and live
here, in ``mappings``; its **magnitudes, severity formula and pixel kernels** are
augmentation and live in ``harness.augment`` (``harness/augment/space.py``). A
:class:`~mappings.MappingSet` is keyed by the names of an :class:`OpVocabulary`; it never needs
to know how an op moves pixels, only which ops exist, which of them have a sign (so a set may
hold separate ``"<op>+"`` / ``"<op>-"`` mappings) and which have no magnitude at all.

An op id is the index of the op's name in :attr:`OpVocabulary.names`.

:data:`TRIVIAL_AUGMENT_WIDE` is the vocabulary of torchvision v2 ``TrivialAugmentWide``
(14 ops, in torchvision's order); ``harness.augment.space`` takes its op names and
signedness from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OpVocabulary", "TRIVIAL_AUGMENT_WIDE"]


@dataclass(frozen=True)
class OpVocabulary:
    """Names of a family of ops, which of them are signed and which are magnitude-free.

    Attributes:
        names: op names; an op id is an index into this tuple. Unique, non-empty strings.
        signed: names of ops whose magnitude has a sign (a mapping set may split them into
            ``"<op>+"`` / ``"<op>-"``). A subset of ``names``.
        magnitude_free: names of ops without a magnitude (their severity is always 0). A subset
            of ``names``, disjoint from ``signed``.
    """

    names: tuple[str, ...]
    signed: frozenset[str] = frozenset()
    magnitude_free: frozenset[str] = frozenset()
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"names must be a non-empty tuple of non-empty strings, got {self.names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {list(names)}")
        signed = frozenset(self.signed)
        magnitude_free = frozenset(self.magnitude_free)
        for attr, subset in (("signed", signed), ("magnitude_free", magnitude_free)):
            unknown = sorted(subset - set(names))
            if unknown:
                raise ValueError(f"{attr} names {unknown} are not in names {list(names)}")
        both = sorted(signed & magnitude_free)
        if both:
            raise ValueError(f"ops {both} cannot be both signed and magnitude_free")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "magnitude_free", magnitude_free)
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(names)})

    def op_id(self, name: str) -> int:
        """Index of ``name`` in :attr:`names`; raises ``ValueError`` naming the allowed ops."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise ValueError(f"op must be one of {list(self.names)}, got {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index

    def __len__(self) -> int:
        return len(self.names)


#: torchvision v2 ``TrivialAugmentWide`` ops, in its ``_AUGMENTATION_SPACE`` order.
TRIVIAL_AUGMENT_WIDE = OpVocabulary(
    names=(
        "Identity",
        "ShearX",
        "ShearY",
        "TranslateX",
        "TranslateY",
        "Rotate",
        "Brightness",
        "Color",
        "Contrast",
        "Sharpness",
        "Posterize",
        "Solarize",
        "AutoContrast",
        "Equalize",
    ),
    signed=frozenset(
        {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
    ),
    magnitude_free=frozenset({"Identity", "AutoContrast", "Equalize"}),
)
