"""Batched soft TrivialAugmentWide on device-resident batches (airbench style).

:class:`BatchSoftAugment` draws an independent op, magnitude bin and sign for every
sample of a batch ``[N, C, H, W]`` from an explicit ``torch.Generator`` and applies them
without a Python loop over samples: samples are grouped by op (one host sync for the
group sizes) and every group is handed to its row of the op table
:data:`harness.augment.ops.TA_TABLE`: all geometric samples (the rows with an ``affine``
builder: ShearX/Y, TranslateX/Y, Rotate) share ONE ``grid_sample`` call with per-sample
inverse affine matrices, and the other rows' ``batch`` kernels take per-sample factors of
shape ``[n, 1, 1, 1]`` (:mod:`harness.augment.batched_ops`; the torchvision kernels cannot be
used directly because they take one scalar parameter per call). AutoContrast and Equalize
are per-image by construction, so their rows call torchvision's ``F.autocontrast`` /
``F.equalize`` once on their sub-batch.

Semantics are those of :class:`harness.augment.trivial.SoftTrivialAugment` (NEAREST
interpolation; zero fill unless ``fill`` is given). ``apply`` accepts any TA op, also one
outside ``ops`` (which only restricts sampling).

Agreement with a per-sample loop of torchvision v2 functional ops (``apply_ta_op``),
asserted by ``tests/test_batch_trivial.py`` and measured there on 64 CIFAR-10 test images
at bins 0, 1, 7, 15, 20, 23, 30 with both signs, 3- and 1-channel, 32x32 and 24x32
(CPU, torch 2.14.1, torchvision 0.29.1); |diff| in pixel units (0..255 uint8, 0..1 float):

==============================  =================================  =================================
op                              uint8: asserted (measured max)     float32: asserted (measured max)
==============================  =================================  =================================
Identity                        exact (0)                          exact (0)
ShearX/Y, TranslateX/Y, Rotate  <= 0.1% pixels differ (0 pixels)   <= 0.1% pixels differ (0 pixels)
Brightness                      +-1 (0)                            1e-6 (0)
Color                           +-1 (0)                            1e-6 (0)
Contrast                        +-1 (0)                            1e-6 (0)
Sharpness                       +-1 (0)                            1e-6 (0; 1-channel 1.2e-7)
Posterize                       exact (0)                          exact (0)
Solarize                        exact (0)                          exact (0)
AutoContrast                    exact (0)                          exact (0)
Equalize                        exact (0)                          exact (0)
==============================  =================================  =================================

Notes on the table:

* Geometric: NEAREST picks ``round(coordinate)``, so a coordinate within one float32 ulp of
  a .5 tie could select the neighbouring pixel if the grid were computed differently. The
  per-sample inverse matrices use torchvision's float64 formula (they differ from
  CPython's ``math`` in ~0.1% of entries by 1 float64 ulp, never after the float32 cast)
  and the grid uses the same 3-term dot products as torchvision's ``bmm``, so no pixel
  differed; the bound leaves room for other BLAS back ends. ``rotate_image``'s
  ``clone``/``rot90`` fast paths (0, 180, and 90/270 degrees on square images; bin 20 of
  Rotate is exactly 90 degrees) are reproduced.
* uint8 colour ops end in a truncating ``.to(uint8)``: a value within one ulp of an integer
  could flip by 1 if a reduction (contrast mean, sharpness convolution) summed in a
  different order for a batch. Measured: bit-identical.
* Float Sharpness on 1-channel images: oneDNN picks a different convolution algorithm for a
  batch than for one single-channel image, so the blur differs by 1 ulp (1.2e-7) in ~23% of
  pixels. (For uint8 the blurred value is rounded, and k/13 is never within float error of
  a .5 tie, so uint8 stays exact.)
* Equalize on floating images quantises to uint8 internally (torchvision's algorithm), so
  its float output is a multiple of 1/255 and differs from the uint8-path result only by
  that quantisation; the batched path calls the same ``F.equalize`` on the sub-batch, hence
  it is exact against the per-sample float result.
* CUDA: the same code runs unchanged (parameters drawn from a CPU generator are identical
  for CPU and CUDA data). The sampling grid is computed element-wise there, never through
  a matrix unit, so TF32 settings cannot quantise coordinates; bit-exactness against
  torchvision on a GPU depends on its kernels and is covered only by the tolerances above
  (``test_cuda_matches_cpu``, skipped without a GPU).

Speed (2-core CPU, batch 512, 32x32 uint8): ~4.7 ms per batch for sampling, all 14 ops,
severities and confidences, vs ~78 ms for a per-sample torchvision ``TrivialAugmentWide``
loop (~16x).
"""

from __future__ import annotations

import torch

from harness.augment._common import BatchAugmentInfo, BatchStage, check_batch
from harness.augment.ops import TA_TABLE, geometric, invalid_magnitudes, severity_from_magnitude
from harness.augment.ta_base import TrivialAugmentBase

__all__ = ["BatchSoftAugment"]

_NUM_OPS = len(TA_TABLE)
# the geometric rows are one contiguous id range (checked when the table is built)
_GEO_IDS = [row.op_id for row in TA_TABLE if row.geometric]
_GEO_FIRST, _GEO_LAST = _GEO_IDS[0], _GEO_IDS[-1]


class BatchSoftAugment(TrivialAugmentBase, BatchStage):
    """Soft TrivialAugmentWide for whole batches, with per-sample provenance.

    Args: those of :class:`~harness.augment.ta_base.TrivialAugmentBase` (``num_classes``,
    ``mapping``, ``hard``, ``num_magnitude_bins``, ``ops``, ``fill``).

    The batched stage protocol (:class:`~harness.augment._common.BatchStage`):
        sample_params(n, height=None, width=None, device=None, generator=None)
            -> {"op_ids": int64 [n], "magnitudes": float32 [n]}
        apply(images, op_ids, magnitudes, generator=None) -> (images, BatchAugmentInfo)
        forward(images, generator=None) -> (images, BatchAugmentInfo)
    """

    def extra_repr(self) -> str:
        return f"{self._repr_fields()}, fill={self.fill}"

    # ------------------------------------------------------------------ sampling

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sampling tables on ``device`` (copied once per device)."""
        tables = self._device_tables.get(device)
        if tables is None:
            tables = (self._table.to(device), self._signed.to(device), self._op_lookup.to(device))
            self._device_tables[device] = tables
        return tables

    def sample_params(
        self,
        n: int,
        height: int | None = None,
        width: int | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Draw an independent op, magnitude bin and sign for each of ``n`` samples.

        Draws (op index, then bin, then sign uniform) happen on the generator's device
        (the default CPU generator when ``generator`` is None) and are then moved to
        ``device`` (default: the generator's device), so a CPU generator gives identical
        parameters for CPU and CUDA data. Magnitude-free ops get magnitude 0.0; signed ops
        are negated when their uniform draw is ``<= 0.5`` (as torchvision). ``height`` and
        ``width`` are not needed (the draws do not depend on the image size).

        Returns:
            ``{"op_ids": int64 [n] indices into TA_OPS, "magnitudes": float32 [n] signed
            magnitudes}``, on ``device``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        table, signed, lookup = self._tables(gen_device)
        choice = torch.randint(len(self.ops), (n,), generator=generator, device=gen_device)
        bins = torch.randint(self.num_magnitude_bins, (n,), generator=generator, device=gen_device)
        flip = torch.rand(n, generator=generator, device=gen_device) <= 0.5
        op_ids = lookup[choice]
        magnitudes = table[op_ids, bins]
        magnitudes = torch.where(signed[op_ids] & flip, -magnitudes, magnitudes)
        target = gen_device if device is None else torch.device(device)
        return {"op_ids": op_ids.to(target), "magnitudes": magnitudes.to(target)}

    # ------------------------------------------------------------------ validation

    def _check_params(
        self, images: torch.Tensor, op_ids: object, magnitudes: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = images.shape[0]
        if not isinstance(op_ids, torch.Tensor):
            raise TypeError(f"op_ids must be an int64 torch.Tensor of shape [N], got {type(op_ids).__name__}")
        if op_ids.dtype.is_floating_point or op_ids.dtype.is_complex or op_ids.dtype == torch.bool:
            raise TypeError(f"op_ids must be an integer tensor, got dtype={op_ids.dtype}")
        if op_ids.shape != (n,):
            raise ValueError(
                f"op_ids must have shape [N] = [{n}] (one op per image), got {tuple(op_ids.shape)}"
            )
        if not isinstance(magnitudes, torch.Tensor):
            raise TypeError(
                f"magnitudes must be a float torch.Tensor of shape [N], got {type(magnitudes).__name__}"
            )
        if magnitudes.dtype.is_complex or magnitudes.dtype == torch.bool:
            raise TypeError(f"magnitudes must be a real tensor, got dtype={magnitudes.dtype}")
        if magnitudes.shape != (n,):
            raise ValueError(
                f"magnitudes must have shape [N] = [{n}] (one magnitude per image), "
                f"got {tuple(magnitudes.shape)}"
            )
        ids = op_ids.to(device=images.device, dtype=torch.int64)
        mags = magnitudes.to(device=images.device, dtype=torch.float32)
        if n == 0:
            return ids, mags
        # Domain checks (mirroring torchvision's own errors; the rows' ``invalid``), gathered
        # for ONE host sync.
        bad_id = (ids < 0) | (ids >= _NUM_OPS)
        rows = invalid_magnitudes(ids.clamp(0, _NUM_OPS - 1), mags.to(torch.float64))
        checks = [(bad_id.any(), f"op_ids must lie in [0, {_NUM_OPS - 1}] (indices into TA_OPS)"),
                  ((~torch.isfinite(mags)).any(), "magnitudes must be finite"), *rows]
        flags = torch.stack([flag for flag, _ in checks]).tolist()
        for flag, (_, message) in zip(flags, checks):
            if flag:
                raise ValueError(message)
        return ids, mags

    # ------------------------------------------------------------------ application

    def _transform(
        self, images: torch.Tensor, op_ids: torch.Tensor, magnitudes: torch.Tensor
    ) -> torch.Tensor:
        if images.shape[0] == 0:
            return images.clone()
        # Sort samples by op once; every op group is then a contiguous slice (a view), and the
        # results are concatenated and un-permuted with one gather: 2 gathers + 1 cat in all,
        # instead of one gather and one scatter per op.
        order = torch.argsort(op_ids, stable=True)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        counts = torch.bincount(op_ids, minlength=_NUM_OPS).tolist()  # the one host sync for grouping
        sorted_images = images.index_select(0, order)
        sorted_ids = op_ids[order]
        sorted_mags = magnitudes[order]
        parts: list[torch.Tensor] = []
        start = 0
        for row in TA_TABLE:
            if row.geometric and row.op_id != _GEO_FIRST:
                continue  # processed together with the first geometric op
            # All geometric samples (contiguous op ids) at once: one grid, one grid_sample.
            count = sum(counts[_GEO_FIRST : _GEO_LAST + 1]) if row.geometric else counts[row.op_id]
            if count == 0:
                continue
            sl = slice(start, start + count)
            start += count
            m64 = sorted_mags[sl].to(torch.float64)  # the python-float magnitudes torchvision sees
            if row.geometric:
                parts.append(geometric(sorted_images[sl], sorted_ids[sl], m64, fill=self.fill))
            else:
                parts.append(row.batch(sorted_images[sl], m64))
        return torch.cat(parts).index_select(0, inverse)

    def apply(
        self,
        images: torch.Tensor,
        op_ids: torch.Tensor,
        magnitudes: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, BatchAugmentInfo]:
        """Deterministic entry point: apply op ``op_ids[i]`` at signed ``magnitudes[i]`` to image i.

        Args:
            images: [N, C, H, W] uint8 or float (values in [0, 1]), C in {1, 3}; not modified.
            op_ids: integer [N], indices into ``TA_OPS`` (any op, also outside ``ops``).
            magnitudes: real [N], signed magnitudes in each op's unit (rounded to float32).
            generator: unused (the protocol's signature; TrivialAugment draws nothing here).

        Returns:
            ``(images_out, info)``: output with the input's dtype, shape and device, and a
            :class:`BatchAugmentInfo` (stage ``"trivial_augment"``) with int64 op ids and float32
            magnitudes, severities and confidences, all on the images' device.
        """
        images = check_batch(images)
        ids, mags = self._check_params(images, op_ids, magnitudes)
        out = self._transform(images, ids, mags)
        height, width = images.shape[-2:]
        severities = severity_from_magnitude(ids, mags, height, width)
        info = BatchAugmentInfo(
            stage=self.stage, op_ids=ids, magnitudes=mags, severities=severities,
            confidences=self._confidences(ids, mags, severities),
        )
        return out, info
