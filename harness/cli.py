"""``softbench`` command-line interface.

Subcommands:
  demo     apply every soft augmentation to real images; write an example grid PNG and a
           confidence summary (the main job until the training pipeline lands)
  presets  print the confidence of every TrivialAugment op x bin under the mapping presets
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _positive_int(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    import mappings

    parser = argparse.ArgumentParser(
        prog="softbench",
        description="Benchmark harness for adaptive label smoothing (soft augmentation).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="apply each soft augmentation to real images; write a grid PNG and confidence tables",
        description=(
            "Apply every TrivialAugment op (bins 0/10/20/30, both signs), Random Erasing, patch noise and "
            "soft crop to real images (scikit-image's bundled photos, or a CIFAR-style npz) and write "
            "augmentation_grid.png, ta_confidence_table.csv, stage_confidence_summary.csv, summary.md "
            "and metrics.json into --out."
        ),
    )
    demo.add_argument("--out", required=True, help="output folder (created if missing)")
    demo.add_argument("--num-classes", type=_positive_int("--num-classes", 2), default=10,
                      help="number of classes K; confidences are floored at 1/K (default: 10)")
    demo.add_argument("--seed", type=_positive_int("--seed", 0), default=0, help="random seed (default: 0)")
    demo.add_argument("--mapping", choices=mappings.PRESETS, default="polynomial_chance",
                      help="TrivialAugment mapping preset shown in the grid (default: polynomial_chance)")
    demo.add_argument("--images-npz", default=None,
                      help="optional npz with 'images' uint8 [N,H,W,3] (e.g. ../shared/data/cifar10/test.npz)")
    demo.add_argument("--size", type=_positive_int("--size", 8), default=64,
                      help="side in px of the bundled demo photos (default: 64; ignored with --images-npz)")

    pre = sub.add_parser("presets", help="print every op x bin confidence under the mapping presets (CSV)")
    pre.add_argument("--num-classes", type=_positive_int("--num-classes", 2), default=10,
                     help="number of classes K (default: 10)")
    pre.add_argument("--image-size", type=_positive_int("--image-size", 2), default=32,
                     help="image side in px, used for Translate severities (default: 32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from harness.demo import run_demo

        try:
            files = run_demo(args.out, num_classes=args.num_classes, seed=args.seed, mapping=args.mapping,
                             images_npz=args.images_npz, size=args.size)
        except (FileNotFoundError, ValueError) as exc:
            print(f"softbench demo: error: {exc}", file=sys.stderr)
            return 2
        for label, path in files.items():
            print(f"{label:>8}: {path}")
        return 0
    if args.command == "presets":
        from harness.demo import ta_confidence_table

        table = ta_confidence_table(args.num_classes, args.image_size, args.image_size)
        sys.stdout.write(table.to_csv(index=False, float_format="%.6g"))
        return 0
    raise AssertionError(args.command)  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
