"""softbench harness: soft augmentations, soft targets and loss (training harness to come)."""

from harness.augment.space import TA_OPS
from harness.loss import (
    LABEL_SMOOTHING_CONVENTIONS,
    label_smoothing_targets_other,
    label_smoothing_targets_uniform,
    soft_cross_entropy,
)
from harness.targets import COMBINE_RULES, combine_confidences, soft_targets
