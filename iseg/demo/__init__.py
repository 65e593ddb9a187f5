"""A local web page to try a checkpoint: ``python -m iseg.demo checkpoint=PATH [port=8000]``.

Open an image, click (or draw the prompt kinds the network takes), keep several objects apart,
undo, and download masks (PNG) or COCO RLE. The server is FastAPI (:mod:`iseg.demo.app`); the
page is a small hand-written canvas app in ``static/``. Needs the ``demo`` extra
(``pip install -e ".[demo]"``).
"""
