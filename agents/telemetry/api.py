"""Telemetry endpoints: ingest other agents' runs (seed 002 payload), list, detail, timeline.

Ingest authenticates with a bearer token (a role that may write) or the tenant's
``X-Ingest-Secret``; reading needs a bearer token of staff. The body is read here, within the
telemetry size limits (a batch is larger than the site-wide limit), so an oversized body is a
413 and a malformed one a 400 before anything is parsed further.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied
from ninja import Field, Query, Router, Schema
from ninja import Status as HttpStatus

from agentops.access import require_capability
from agentops.api import BearerToken
from agents.selectors import access_run
from agents.telemetry import metrics, selectors, services
from agents.telemetry.schemas import PayloadError, parse_batch, parse_run
from agents.telemetry.secrets import IngestSecretAuth

router = Router(tags=["agent runs"])
INGEST_AUTH = [BearerToken(), IngestSecretAuth()]
ERRORS = {400: dict, 401: dict, 403: dict, 409: dict, 413: dict}


class BodyError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def read_json(request, limit: int):
    """The request's JSON body, at most ``limit`` bytes (else 413); malformed → 400."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    too_big = BodyError(413, {"error": "too_large", "message": f"The body exceeds {limit} bytes."})
    if length > limit:
        raise too_big
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_big
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BodyError(
            400, {"error": "malformed_json", "message": "The body is not valid JSON."}
        ) from None


def _invalid(exc: PayloadError):
    return HttpStatus(
        400,
        {"error": "validation_error", "message": "Some fields are invalid.", "fields": exc.fields},
    )


def _ingest_actor(request):
    """The writer: the token's user (a role that may write), or the secret (no user)."""
    if getattr(request, "ingest_secret", False):
        return None
    require_capability(request.membership, "ticket.write")
    return request.membership.user


def _ingest(request, parse, limit: int):
    actor = _ingest_actor(request)
    try:
        runs = parse(read_json(request, limit))
    except BodyError as exc:
        return HttpStatus(exc.status, exc.body)
    except PayloadError as exc:
        return _invalid(exc)
    try:
        results = services.ingest_runs(
            tenant=request.tenant,
            runs=runs,
            actor=actor,
            via="secret" if actor is None else "token",
        )
    except services.RunConflict as exc:
        return HttpStatus(409, {"error": "conflict", "message": str(exc)})
    return results


@router.post(
    "", auth=INGEST_AUTH, response={200: dict, 201: dict, **ERRORS}, summary="Ingest a run"
)
def ingest_run(request):
    """Upsert one run by ``run_id``: 201 when new, 200 when it replaced the stored one."""
    results = _ingest(request, lambda data: [parse_run(data)], settings.TELEMETRY_MAX_RUN_BYTES)
    if not isinstance(results, list):
        return results
    return HttpStatus(201 if results[0]["created"] else 200, results[0])


@router.post("/batch", auth=INGEST_AUTH, response={200: dict, **ERRORS}, summary="Ingest runs")
def ingest_batch(request):
    """Up to 500 runs in one request, all or none."""
    results = _ingest(request, parse_batch, settings.TELEMETRY_MAX_BATCH_BYTES)
    if not isinstance(results, list):
        return results
    return {"accepted": len(results), "runs": results}


class ListParams(Schema):
    agent: str = Field("", max_length=100)
    version: str = Field("", max_length=40)
    environment: str = Field("", max_length=40)
    status: str = Field("", json_schema_extra={"enum": ["", *selectors.STATUS_FILTER]})
    origin: str = Field("", pattern="^(|internal|ingested)$")
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000)


def api_reader(request):
    if request.membership is None:  # an ingest secret writes, it never reads
        raise PermissionDenied("Reading runs needs a bearer token.")
    require_capability(request.membership, "ticket.view_all")
    return request.membership


@router.get("", response={200: dict, 400: dict, 403: dict}, summary="List runs")
def list_runs(request, params: Query[ListParams]):
    membership = api_reader(request)
    if params.status and params.status not in selectors.STATUS_FILTER:
        fields = {"status": [f"Unknown status {params.status!r}."]}
        return HttpStatus(400, {"error": "validation_error", "fields": fields})
    runs = selectors.filtered_runs(
        membership,
        selectors.RunFilters(
            agent=params.agent,
            version=params.version,
            environment=params.environment,
            status=params.status,
            origin=params.origin,
            since=params.since,
            until=params.until,
        ),
    )
    page = list(runs[params.offset : params.offset + params.limit])
    return {
        "count": runs.count(),
        "limit": params.limit,
        "offset": params.offset,
        "items": [selectors.run_summary(r) for r in page],
    }


class MetricsParams(Schema):
    hours: int = Field(24, ge=1, le=24 * 31)
    origin: str = Field("", pattern="^(|internal|ingested)$")


@router.get("/metrics", response={200: dict, 400: dict, 403: dict}, summary="Run metrics")
def run_metrics(request, params: Query[MetricsParams]):
    """Totals, success rate, top failing tools, p95 step latency and cost; per agent and
    version, and per hour (RCA runs themselves are not counted)."""
    membership = api_reader(request)
    return metrics.overview(tenant=membership.tenant, hours=params.hours, origin=params.origin)


@router.get("/{run_id}", response={200: dict, 403: dict, 404: dict}, summary="One run")
def get_run(request, run_id: str):
    run = access_run(api_reader(request), run_id)
    return selectors.run_summary(run, counts=selectors.counts_of(run))


@router.get("/{run_id}/timeline", response={200: dict, 403: dict, 404: dict}, summary="Timeline")
def get_timeline(request, run_id: str):
    """Steps, tool calls and guardrail events merged in time order, for replay."""
    run = access_run(api_reader(request), run_id)
    return {"run_id": run.run_id, "items": selectors.timeline(run)}


otlp_router = Router(tags=["opentelemetry"])


def _otlp_body(request, limit: int):
    """The export request as OTLP JSON (protobuf decoded), gzip allowed."""
    import zlib

    from agents.telemetry import otlp

    length = (
        int(request.META.get("CONTENT_LENGTH") or 0)
        if request.META.get("CONTENT_LENGTH", "").isdigit()
        else 0
    )
    too_big = BodyError(413, {"error": "too_large", "message": f"The body exceeds {limit} bytes."})
    if length > limit:
        raise too_big
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_big
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise BodyError(400, {"error": "malformed_body", "message": "Bad gzip body."}) from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise too_big
    if request.content_type == "application/x-protobuf":
        return otlp.decode_protobuf(raw), True
    try:
        return json.loads(raw, parse_constant=_reject_constant), False
    except (ValueError, RecursionError):
        raise BodyError(
            400, {"error": "malformed_json", "message": "The body is not valid JSON."}
        ) from None


@otlp_router.post(
    "/v1/traces", auth=INGEST_AUTH, response={200: dict, **ERRORS}, summary="OTLP/HTTP traces"
)
def otlp_traces(request):
    """OpenTelemetry traces (GenAI conventions), JSON or protobuf: each trace becomes a run."""
    from django.http import HttpResponse

    from agents.telemetry import otlp

    actor = _ingest_actor(request)
    try:
        doc, protobuf = _otlp_body(request, settings.TELEMETRY_MAX_BATCH_BYTES)
        spans = otlp.flatten(doc)
        results = (
            otlp.ingest_spans(tenant=request.tenant, spans=spans, actor=actor) if spans else []
        )
    except BodyError as exc:
        return HttpStatus(exc.status, exc.body)
    except PayloadError as exc:
        return _invalid(exc)
    except services.RunConflict as exc:
        return HttpStatus(409, {"error": "conflict", "message": str(exc)})
    if protobuf:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        return HttpResponse(
            ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )
    return {"partialSuccess": {}, "runs": results}
