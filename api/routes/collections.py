"""Collections: index jobs over server-side paths, and what each collection holds."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.collection_checks import check_can_add, existing_store
from api.deps import CeleryDep, PrincipalDep, RedisDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.idempotency import IdempotencyKeyDep, idempotent, request_fingerprint
from api.job_records import create_job, dispatch
from api.openapi_responses import errors
from api.schemas import CollectionName, IndexJobRequest, JobAccepted
from shared.ingest.import_paths import ImportPathError, resolve_import_path
from shared.jobs.records import JobKind
from shared.jobs.tasks import IndexTask
from shared.store import CollectionInfo, CollectionStore, Store

router = APIRouter(prefix="/v1/collections", tags=["collections"])

CollectionPath = Path(
    pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Lower-case letters, digits, '_' and '-', 1-64 characters"
)


def list_collection_infos(store: Store, principal: Principal) -> list[CollectionInfo]:
    """The collections `principal` may use (every one with keys off, or for an unlimited key)."""
    infos = []
    for name in filter(principal.may_use, store.collection_names()):
        try:
            infos.append(store.collection(name).info())
        except LookupError:  # dropped since it was listed
            continue
    return infos


@router.get("", response_model=list[CollectionInfo], summary="Every collection with its counts and model")
async def list_collections(store: StoreDep, principal: PrincipalDep) -> list[CollectionInfo]:
    return await run_in_threadpool(list_collection_infos, store, principal)


@router.delete("/{collection}", responses=errors(404, 422), summary="Delete a collection with all its documents")
async def delete_collection(
    store: StoreDep, settings: SettingsDep, collection: CollectionName = CollectionPath
) -> dict[str, str]:
    found = await existing_store(store, collection)
    await run_in_threadpool(_drop_with_uploads, store, found, settings.UPLOAD_GC_GRACE_S)
    return {"deleted": collection}


def _drop_with_uploads(store: Store, found: CollectionStore, grace_s: float) -> None:
    """Drop the collection, then its uploads no other collection refers to (those past the grace period now,
    the rest by the reaper's sweep: docs/operations.md)."""
    hashes = found.sha256s()
    found.drop()
    store.collect_uploads(grace_s, among=hashes)


@router.get("/{collection}", response_model=CollectionInfo, responses=errors(404, 422))
async def get_collection(store: StoreDep, collection: CollectionName = CollectionPath) -> CollectionInfo:
    found = await existing_store(store, collection)
    return await run_in_threadpool(found.info)


@router.post(
    "/{collection}/index-jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=errors(400, 403, 404, 409, 422, 503),
    summary="Index files or folders already on the server (under an allowed import root)",
)
async def create_index_job(
    body: IndexJobRequest,
    response: Response,
    principal: PrincipalDep,
    settings: SettingsDep,
    store: StoreDep,
    redis: RedisDep,
    celery: CeleryDep,
    idempotency_key: IdempotencyKeyDep,
    collection: CollectionName = CollectionPath,
) -> JobAccepted:
    async def submit() -> JobAccepted:
        for raw in body.paths:  # refuse bad paths now, with a 4xx, rather than as a failed job later
            try:
                resolve_import_path(raw, settings)
            except ImportPathError as exc:
                status = {"path_not_allowed": 403, "path_not_found": 404}.get(exc.code, 422)
                raise ApiError(status, exc.code, exc.message) from exc
        await check_can_add(settings, store, collection)
        job_id = await create_job(redis, settings, JobKind.INDEX, collection, owner=principal.owner)
        await dispatch(celery, IndexTask(job_id=job_id, collection=collection, paths=body.paths))
        return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}")

    fingerprint = request_fingerprint({"collection": collection, "body": body.model_dump(mode="json")})
    return await idempotent(redis, settings, "index-jobs", idempotency_key, fingerprint, submit, JobAccepted, response)
