"""Soft augmentations with per-sample provenance (per-sample and batched)."""
