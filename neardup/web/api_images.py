"""REST routes over images: health, search by upload, similar images, an image's record, its
thumbnail and its file. Images are named by catalog id only, never by a path a client sends."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

import neardup
from neardup.thumbnails import thumbnail_key, thumbnail_side

from .schemas import ERRORS, HealthOut, ImageId, ImageOut, SearchOut, match_out
from .state import ServerState, state

router = APIRouter(prefix="/api", responses=ERRORS)

K = Query(10, ge=1, le=1000, description="results wanted")
BY = Query("auto", description="auto, or one feature the catalog stores (GET /api/health lists them)")


@router.get("/health", response_model=HealthOut, tags=["server"])
def health(st: ServerState = Depends(state)) -> HealthOut:
    """The server is up: its catalog, how many images it holds, the features to search by."""
    c = st.collection
    generation, images = st.present()
    return HealthOut(status="ok", version=neardup.__version__, catalog=str(c.path), images=images,
                     features=list(c.features()), generation=generation)


@router.post("/search", response_model=SearchOut, tags=["search"])
def search(file: UploadFile = File(..., description="an image"), k: int = K, by: str = BY,
           st: ServerState = Depends(state)) -> SearchOut:
    """The k catalog images most like the uploaded image, best first: the CLI's
    `search --json` answer, each result with its id. An image that cannot be decoded (or is
    over the decoder's megapixel limit) is a 422 saying why."""
    data = file.file.read()
    with st.search_turn() as c:
        matches = c.search(data, k=k, by=by)
    return SearchOut(query=file.filename or "upload", results=[match_out(m) for m in matches])


@router.get("/images/{image_id}/similar", response_model=SearchOut, tags=["search"])
def similar(image_id: ImageId, k: int = K, by: str = BY, st: ServerState = Depends(state)) -> SearchOut:
    """The k images most like catalogued image `image_id` (itself left out)."""
    with st.search_turn() as c:
        matches = c.similar(image_id, k=k, by=by)
    return SearchOut(query=f"image {image_id}", results=[match_out(m) for m in matches])


@router.get("/images/{image_id}", response_model=ImageOut, tags=["images"])
def image(image_id: ImageId, st: ServerState = Depends(state)) -> ImageOut:
    """An image's record: size, dimensions, format, status, and the EXIF date and camera."""
    d = st.collection.image(image_id)
    return ImageOut(id=d.image_id, path=d.path, size=d.size, mtime_ns=d.mtime_ns, sha256=d.sha256, width=d.width,
                    height=d.height, format=d.format, status=d.status, error=d.error, taken=d.taken, camera=d.camera,
                    exif_error=d.exif_error)


@router.get("/images/{image_id}/thumbnail", tags=["images"],
            responses={200: {"content": {"image/jpeg": {}}, "description": "a JPEG"}})
def thumbnail(request: Request, image_id: ImageId,
              size: int = Query(256, ge=16, le=2048, description="longest side in pixels (rounded up to a cached size)"),
              st: ServerState = Depends(state)) -> Response:
    """A JPEG of the image at most `size` pixels on its long side, cached beside the catalog."""
    info = st.collection.image(image_id, exif=False)
    tag = f'"{thumbnail_key(info.sha256, thumbnail_side(size))}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == tag and info.status == "ok":
        return Response(status_code=304, headers=headers)
    return Response(st.collection.thumbnail(image_id, size), media_type="image/jpeg", headers=headers)


@router.get("/images/{image_id}/file", tags=["images"],
            responses={200: {"content": {"image/*": {}}, "description": "the file's bytes"}})
def file(image_id: ImageId, st: ServerState = Depends(state)) -> FileResponse:
    """The image's file as it is on disk, while it is in the collection."""
    path = st.collection.image_file(image_id)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, content_disposition_type="inline", filename=path.name)
