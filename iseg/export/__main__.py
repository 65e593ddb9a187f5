"""``python -m iseg.export checkpoint=PATH format=onnx [output=PATH]``: write the network of a checkpoint.

``checkpoint`` is anything :func:`iseg.models.checkpoints.load_model` reads (official RITM, f-BRS
and FCFI files, iseg's Lightning checkpoints); ``output`` defaults to the checkpoint's path with
the format's suffix. Mistakes are reported as one line, without a traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

FORMATS = {"onnx": ".onnx"}
KEYS = ("checkpoint", "format", "output")
USAGE = "usage: python -m iseg.export checkpoint=PATH format=onnx [output=PATH]"


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """``key=value`` arguments -> dict; unknown keys, missing checkpoint and unknown formats are refused."""
    values: dict[str, str] = {}
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or key not in KEYS:
            raise ValueError(f"unknown argument {argument!r}: expected {', '.join(k + '=...' for k in KEYS)}")
        values[key] = value
    if not values.get("checkpoint"):
        raise ValueError("checkpoint=PATH is required")
    values.setdefault("format", "onnx")
    if values["format"] not in FORMATS:
        raise ValueError(f"format={values['format']!r} is not supported; formats: {sorted(FORMATS)}")
    values.setdefault("output", str(Path(values["checkpoint"]).with_suffix(FORMATS[values["format"]])))
    return values


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + (__doc__ or ""))
        return 0
    from iseg.export.onnx import ExportError, export_onnx
    from iseg.models.checkpoints import CheckpointError, load_model

    try:
        values = parse_arguments(argv)
        start = time.perf_counter()
        net = load_model(values["checkpoint"], map_location="cpu")
        export_onnx(net, values["output"])
    except (OSError, ValueError, TypeError, ImportError, CheckpointError, ExportError) as error:
        print(f"iseg.export: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    size = Path(values["output"]).stat().st_size / 2**20
    print(f"wrote {values['output']} ({type(net).__name__}, {size:.1f} MiB) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
