"""Documents of a collection: bulk multipart upload (→ an index job), listing, and deletion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from api.collection_checks import check_can_add, existing_store
from api.deps import CeleryDep, PrincipalDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.idempotency import IdempotencyKeyDep, idempotent, request_fingerprint
from api.job_records import create_job, dispatch
from api.key_limits import KeyGateDep
from api.openapi_responses import errors
from api.routes.collections import CollectionPath
from api.schemas import UPLOAD_REQUEST_BODY, CollectionName
from shared.ingest.import_paths import SUPPORTED_TYPES
from shared.ingest.items import upload_item
from shared.ingest.uploads import StoredUpload, UploadRejected, clean_filename, store_upload
from shared.jobs.records import JobKind
from shared.jobs.tasks import IndexTask
from shared.settings import Settings
from shared.store import DocumentInfo
from shared.store.blobs import BlobStore

router = APIRouter(prefix="/v1/collections", tags=["documents"])


class UploadedDocument(BaseModel):
    id: str
    filename: str
    sha256: str
    bytes: int


class RejectedFile(BaseModel):
    filename: str
    code: str
    message: str


class UploadAccepted(BaseModel):
    job_id: str
    status_url: str
    documents: list[UploadedDocument]
    rejected: list[RejectedFile] = []


class DocumentList(BaseModel):
    collection: str
    documents: list[DocumentInfo]


def _store_all(
    uploads: list[UploadFile], settings: Settings, blobs: BlobStore
) -> tuple[list[StoredUpload], list[UploadRejected]]:
    stored: list[StoredUpload] = []
    rejected: list[UploadRejected] = []
    for upload in uploads:
        name = clean_filename(upload.filename)
        try:
            item = store_upload(upload.file, name, settings.uploads_dir, settings.MAX_UPLOAD_FILE_BYTES)
        except UploadRejected as exc:
            rejected.append(exc)
            continue
        blobs.put(item.path.name, item.path)  # where index workers on any machine can read it
        stored.append(item)
    return stored, rejected


@asynccontextmanager
async def _multipart(request: Request, settings: Settings) -> AsyncIterator[FormData]:
    """The parsed form; Starlette's bare 400s for a malformed body or too many parts get a code a client can use."""
    try:
        form = await request.form(max_files=settings.MAX_UPLOAD_FILES, max_fields=100)
    except HTTPException as exc:
        if exc.status_code != 400:
            raise
        if str(exc.detail).startswith("Too many files"):
            raise ApiError(413, "too_many_files", f"{exc.detail} (MAX_UPLOAD_FILES)") from exc
        raise ApiError(400, "invalid_multipart", f"the multipart body cannot be read: {exc.detail}") from exc
    try:
        yield form
    finally:
        await form.close()


@router.post(
    "/{collection}/documents",
    status_code=202,
    response_model=UploadAccepted,
    responses=errors(400, 409, 413, 415, 422, 503),
    openapi_extra=UPLOAD_REQUEST_BODY,
    summary="Upload one or many files (multipart, any field name) and index them",
    description=f"Types: {SUPPORTED_TYPES} (docs/api.md, Supported formats). "
    "Files are stored by sha256; re-uploading a file with the same "
    "name and content adds nothing, a changed file replaces its old chunks. Any unsupported (415), oversized "
    "(413), empty or undecodable text file (422) refuses the whole request, naming every bad file, unless "
    "`skip_invalid=true`, which indexes the rest and lists the bad ones under `rejected`.",
)
async def upload_documents(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    gate: KeyGateDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    celery: CeleryDep,
    idempotency_key: IdempotencyKeyDep,
    collection: CollectionName = CollectionPath,
    skip_invalid: Annotated[bool, Query(description="Index the good files and report the bad ones")] = False,
) -> UploadAccepted:
    # MAX_UPLOAD_REQUEST_BYTES is enforced while the body is read (api/body_limit.py).
    await check_can_add(settings, store, collection)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "multipart_required", "send the files as multipart/form-data (curl -F files=@a.md)")
    async with _multipart(request, settings) as form:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise ApiError(422, "no_files", "the request has no file parts")
        stored, rejected = await run_in_threadpool(_store_all, uploads, settings, store.blobs)
    if rejected and (not skip_invalid or not stored):
        first = rejected[0]
        listing = "; ".join(str(r) for r in rejected)
        raise ApiError(first.status, first.code, f"{len(rejected)} file(s) refused, nothing was indexed: {listing}")

    async def submit() -> UploadAccepted:
        # Counted once stored (a multipart body's size is known only once read), and not again on a replay; past
        # the quota nothing is indexed, and the stored files go with the next sweep of unreferenced uploads.
        await gate.admit_upload(sum(s.bytes for s in stored))
        items = [upload_item(s.filename, s.path) for s in stored]
        job_id = await create_job(redis, settings, JobKind.INDEX, collection, owner=principal.owner)
        await dispatch(celery, IndexTask(job_id=job_id, collection=collection, items=items))
        return UploadAccepted(
            job_id=job_id,
            status_url=f"/v1/jobs/{job_id}",
            documents=[
                UploadedDocument(id=i.doc_id, filename=s.filename, sha256=s.sha256, bytes=s.bytes)
                for i, s in zip(items, stored, strict=True)
            ],
            rejected=[RejectedFile(filename=r.filename, code=r.code, message=r.message) for r in rejected],
        )

    # The files are stored (content-addressed, so a retry writes nothing new) before the key is checked: the
    # fingerprint is what was uploaded, the ordered (filename, sha256) pairs, plus the query parameters.
    files = [[s.filename, s.sha256] for s in stored] + [[r.filename, None] for r in rejected]
    fingerprint = request_fingerprint({"collection": collection, "files": files, "skip_invalid": skip_invalid})
    return await idempotent(
        redis, settings, "documents", idempotency_key, fingerprint, submit, UploadAccepted, response
    )


@router.get(
    "/{collection}/documents",
    response_model=DocumentList,
    responses=errors(404, 422),
    summary="The documents of a collection, with their ids and chunk counts",
)
async def list_documents(
    store: StoreDep,
    collection: CollectionName = CollectionPath,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DocumentList:
    found = await existing_store(store, collection)
    documents = await run_in_threadpool(found.documents, limit, offset)
    return DocumentList(collection=collection, documents=documents)


@router.delete(
    "/{collection}/documents/{doc_id}",
    responses=errors(404, 422),
    summary="Remove a document and all its chunks (from vector and BM25 retrieval alike)",
)
async def delete_document(
    doc_id: str, store: StoreDep, collection: CollectionName = CollectionPath
) -> dict[str, str | int]:
    found = await existing_store(store, collection)
    removed = await run_in_threadpool(found.delete_document, doc_id)
    if removed is None:
        raise ApiError(404, "document_not_found", f"collection {collection!r} has no document {doc_id!r}")
    return {"deleted": doc_id, "chunks_removed": removed}
