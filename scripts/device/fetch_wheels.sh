#!/usr/bin/env bash
# Wheels of what a GPU machine's image lacks, for an offline machine: run here (where pip can
# download), from the repository root, with this project installed; they land in .whl/ (ignored by
# git), and scripts/device/gpu_check.sh installs them there. The versions are the ones installed
# here, so the GPU machine runs what the test suite ran.
#   bash scripts/device/fetch_wheels.sh [PYTHON_VERSION]   # the GPU machine's Python, default 3.12
set -euo pipefail
python_version=${1:-3.12}
# Beyond an image with torch, lightning, torchmetrics, timm, OpenCV, scipy, scikit-image and pytest.
packages=(hydra-core omegaconf albumentations albucore stringzilla simsimd pycocotools guided-filter-pytorch
          pydantic pydantic-core annotated-types typing-inspection typing-extensions)
pinned=()
for name in "${packages[@]}"; do
    version=$(python3 -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name") \
        || { echo "fetch_wheels: $name is not installed here (pip install -e '.[dev]' first)" >&2; exit 1; }
    pinned+=("$name==$version")
done
rm -rf .whl && mkdir .whl
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
    "${platforms[@]}" -d .whl "${pinned[@]}"
# Hydra's parser runtime is published as a source archive only: a pure-Python wheel built here.
antlr=$(python3 -c "import importlib.metadata as m; print(m.version('antlr4-python3-runtime'))")
python3 -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$antlr"
du -sh .whl
ls .whl
