"""The demo's web server: a FastAPI app with one annotation session and a small canvas page.

API (JSON unless said otherwise; an error is ``{"detail": message}`` with a 4xx/5xx status):
- ``GET /api/status``: model loading progress (state, stage, step/steps), the prompt kinds offered;
- ``POST /api/image`` (multipart ``file``): open an image; ``GET /api/image.png``: the working image;
- ``GET /api/state``: image, objects (colour, prompts, area), current object, undo;
- ``POST /api/prompt`` (a prompt as in :mod:`iseg.demo.wire`, optional ``object``): add it;
- ``POST /api/objects``: new object; ``POST /api/select`` ``{"object": id}``;
- ``POST /api/undo``, ``POST /api/reset``;
- ``GET /api/overlay.png``: the coloured objects (RGBA, working size);
- ``GET /api/mask.png?object=ID``: one object's mask, ``GET /api/labels.png``: object ids, and
  ``GET /api/rle.json``: COCO RLE of every object, all three at the original image size.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Body, FastAPI, File, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from iseg.demo.config import DemoConfig
from iseg.demo.exports import binary_mask_png, coco_annotations, png_bytes
from iseg.demo.images import ImageRejected, load_image
from iseg.demo.loader import ModelLoader
from iseg.demo.session import AnnotationSession, SessionError
from iseg.demo.wire import PromptRejected, prompt_from_json

STATIC = resources.files("iseg.demo") / "static"


def create_app(config: DemoConfig, loader: ModelLoader | None = None, start_loading: bool = True) -> FastAPI:
    """The app for ``config``; the model loads in the background unless ``start_loading`` is False
    (then call ``app.state.loader.load()``)."""
    loader = loader or ModelLoader(config)
    session: AnnotationSession | None = None
    lock = threading.Lock()  # one session, requests served from a thread pool

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_loading and not loader.started:
            loader.start()
        yield

    app = FastAPI(title="iseg demo", docs_url="/api/docs", redoc_url=None, lifespan=lifespan)
    app.state.loader = loader
    app.state.config = config

    def current_session() -> AnnotationSession:
        nonlocal session
        if session is None:
            session = AnnotationSession(loader.new_predictor, loader.prompt_types)
        return session

    @contextmanager
    def ready_session() -> Iterator[AnnotationSession]:
        """The session, once the model is loaded; user mistakes become 4xx answers with their message."""
        if loader.state == "error":
            raise HTTPException(503, f"the checkpoint could not be loaded: {loader.error}")
        if loader.state != "ready":
            raise HTTPException(503, f"the model is still loading ({loader.status()['stage']})")
        with lock:
            try:
                yield current_session()
            except (SessionError, PromptRejected) as error:
                raise HTTPException(409 if isinstance(error, SessionError) else 422, str(error)) from error
            except (ValueError, TypeError) as error:  # e.g. a prompt outside the image (check_prompt)
                raise HTTPException(422, str(error)) from error

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/api/status")
    def status() -> dict:
        return loader.status()

    @app.get("/api/state")
    def state() -> dict:
        with ready_session() as s:
            return s.state()

    @app.post("/api/image")
    async def open_image(file: Annotated[UploadFile, File()]) -> dict:
        data = await file.read()
        name = Path(file.filename or "upload").name
        try:
            image = load_image(data, name, config.max_side, config.max_pixels)
        except ImageRejected as error:
            raise HTTPException(415, str(error)) from error
        with ready_session() as s:
            s.set_image(image)
            return s.state()

    @app.get("/api/image.png")
    def working_image() -> Response:
        with ready_session() as s:
            if s.image is None:
                raise SessionError("open an image first")
            return Response(png_bytes(s.image.rgb), media_type="image/png", headers=_no_cache())

    @app.post("/api/prompt")
    def add_prompt(payload: Annotated[dict, Body()]) -> dict:
        with ready_session() as s:
            fields = dict(payload)
            object_id = fields.pop("object", None)
            if object_id is not None and not isinstance(object_id, int):
                raise PromptRejected(f"object must be an object id (int), got {object_id!r}")
            s.add(prompt_from_json(fields, loader.prompt_types), object_id)
            return s.state()

    @app.post("/api/objects")
    def new_object() -> dict:
        with ready_session() as s:
            s.new_object()
            return s.state()

    @app.post("/api/select")
    def select(payload: Annotated[dict, Body()]) -> dict:
        with ready_session() as s:
            s.select(_object_id(payload.get("object")))
            return s.state()

    @app.post("/api/undo")
    def undo() -> dict:
        with ready_session() as s:
            s.undo()
            return s.state()

    @app.post("/api/reset")
    def reset() -> dict:
        with ready_session() as s:
            s.reset()
            return s.state()

    @app.get("/api/overlay.png")
    def overlay() -> Response:
        with ready_session() as s:
            return Response(png_bytes(s.overlay_rgba()), media_type="image/png", headers=_no_cache())

    @app.get("/api/mask.png")
    def mask(object: int) -> Response:
        with ready_session() as s:
            labels = _original_labels(s)
            s.find(object)  # an unknown id is an error, not an empty mask
            return _download(binary_mask_png(labels, object), "image/png", f"{_stem(s)}_object{object}.png")

    @app.get("/api/labels.png")
    def labels() -> Response:
        with ready_session() as s:
            return _download(png_bytes(_original_labels(s)), "image/png", f"{_stem(s)}_labels.png")

    @app.get("/api/rle.json")
    def rle() -> JSONResponse:
        with ready_session() as s:
            labels = _original_labels(s)
            content = {
                "image": {"file_name": s.image.name, "height": int(labels.shape[0]), "width": int(labels.shape[1])},
                "annotations": coco_annotations(labels, [obj.id for obj in s.objects if obj.prompts]),
            }
            name = f"{_stem(s)}_rle.json"
            return JSONResponse(content, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _object_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PromptRejected(f"object must be an object id (int), got {value!r}")
    return value


def _original_labels(session: AnnotationSession) -> np.ndarray:
    if session.image is None:
        raise SessionError("open an image first")
    return session.label_map(session.image.original_size)


def _stem(session: AnnotationSession) -> str:
    """The image's file name without suffix, reduced to characters safe in a download header."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(session.image.name).stem).strip("._") or "image"


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": "no-store"}


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
