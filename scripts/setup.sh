#!/usr/bin/env bash
# One-shot, idempotent set-up: creates .venv and installs softbench with its dev, ray and slurm extras.
# torch/torchvision are pinned to the builds that this kind of machine serves from local
# disk (x86_64: 2.14.1/0.29.1, aarch64: 2.9.1/0.24.1) so pip never downloads a newer torch.
# Override with SOFTBENCH_TORCH="torch==X torchvision==Y".
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi

case "$(uname -m)" in
    x86_64) default_torch="torch==2.14.1 torchvision==0.29.1" ;;
    aarch64|arm64) default_torch="torch==2.9.1 torchvision==0.24.1" ;;
    *) default_torch="torch torchvision" ;;
esac
TORCH_SPEC="${SOFTBENCH_TORCH:-$default_torch}"

stamp=.venv/.softbench-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "[setup] installing $TORCH_SPEC into .venv (first run takes a few minutes)"
# shellcheck disable=SC2086
.venv/bin/pip install --disable-pip-version-check -q $TORCH_SPEC 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/pip install --disable-pip-version-check -q -e '.[dev,ray,slurm]' 2>&1 | grep -v "is ignored: it is neither" || true
# Frost textures of the corruption benchmark ship inside imagecorruptions-imaug. Only its image
# files are used, so it is installed without its (heavy: OpenCV, numba) dependencies.
.venv/bin/pip install --disable-pip-version-check -q --no-deps 'imagecorruptions-imaug==1.1.5' 2>&1 \
    | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import torch, torchvision, harness, mappings, mlxtend, ray, submitit; from harness.corruptions import frost_textures_available as f; assert f()" \
    || { echo "[setup] installation failed: torch/torchvision/softbench do not import" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)')"
