"""``python -m iseg.demo checkpoint=PATH [host=127.0.0.1] [port=8000] [settings=ritm] [refiner=none]
[device=cpu] [backend=torch|onnxruntime|openvino] [max_side=1600] [max_pixels=100000000]``: serve the demo page (see :mod:`iseg.demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iseg.demo.config import DemoConfig


def parse_args(argv: Sequence[str]) -> DemoConfig:
    """``key=value`` arguments onto :class:`DemoConfig`; unknown keys and bad values are errors."""
    bad = [arg for arg in argv if "=" not in arg]
    if bad:
        raise SystemExit(f"iseg.demo: arguments are key=value pairs, got {bad}; see python -m iseg.demo --help")
    try:
        config = OmegaConf.merge(OmegaConf.structured(DemoConfig), OmegaConf.from_dotlist(list(argv)))
        if OmegaConf.is_missing(config, "checkpoint"):
            raise SystemExit("iseg.demo: checkpoint=PATH is required (an iseg .ckpt or an official .pth file)")
        parsed: DemoConfig = OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise SystemExit(f"iseg.demo: {f'{key}: ' if key else ''}{str(error).splitlines()[0]}") from error
    path = Path(parsed.checkpoint)
    if not path.exists():
        raise SystemExit(f"iseg.demo: checkpoint file {path} does not exist")
    return parsed


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return
    config = parse_args(argv)
    import uvicorn

    from iseg.allocator import keep_freed_memory
    from iseg.demo.app import create_app

    keep_freed_memory()  # a server process of its own: each click's forward reuses the last one's memory

    host = f"[{config.host}]" if ":" in config.host else config.host
    print(f"iseg demo: http://{host}:{config.port}/ (loading {config.checkpoint}; the page shows the progress)")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
