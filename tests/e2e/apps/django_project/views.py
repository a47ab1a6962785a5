"""Views of the e2e Django project: a page, a form POST, a detail view, a streamed response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

STREAM_LINES = 5


def home(request: HttpRequest) -> HttpResponse:
    kind = "asgi" if isinstance(request, ASGIRequest) else "wsgi"
    html = f"<html><head><title>corral django</title></head><body>served by {kind}</body></html>"
    return HttpResponse(html)


@csrf_exempt
@require_POST
def form(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "")
    return HttpResponse(f"Hello, {name}! ({len(request.body)} bytes)", status=201)


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    if item_id != 1:
        raise Http404("no such item")
    return HttpResponse("item 1")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    # Each interface streams natively: an async iterator under ASGI, a generator under WSGI.
    if isinstance(request, ASGIRequest):
        return StreamingHttpResponse(_async_lines(), content_type="text/plain")
    return StreamingHttpResponse(_lines(), content_type="text/plain")


def _lines() -> Iterator[bytes]:
    for i in range(STREAM_LINES):
        yield f"line {i}\n".encode()


async def _async_lines() -> AsyncIterator[bytes]:
    for i in range(STREAM_LINES):
        yield f"line {i}\n".encode()
