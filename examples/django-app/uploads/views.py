"""The example's own views: health, an index listing uploads, an upload endpoint."""

import os
import socket

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from uploads.models import Document

RELEASE = os.environ.get("SHIPIT_RELEASE", "dev")


def health(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; 503 otherwise (or with DJANGO_FAIL_HEALTH=1)."""
    if os.environ.get("DJANGO_FAIL_HEALTH") == "1":
        return JsonResponse({"status": "fail", "release": RELEASE}, status=503)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any database error makes the release unhealthy
        return JsonResponse({"status": "fail", "release": RELEASE, "reason": str(exc)}, status=503)
    return JsonResponse({"status": "ok", "release": RELEASE})


def index(request: HttpRequest) -> JsonResponse:
    docs = [{"name": d.file.name, "url": d.file.url, "release": d.release}
            for d in Document.objects.order_by("-uploaded_at")[:20]]
    return JsonResponse({"app": "django", "release": RELEASE, "hostname": socket.gethostname(),
                         "documents": docs})


@csrf_exempt  # an API for the example's tests; the admin keeps Django's CSRF protection
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    """Store the multipart field ``file`` in media/docs/; answers its URL."""
    if "file" not in request.FILES:
        return JsonResponse({"error": "send a multipart field named file"}, status=400)
    doc = Document.objects.create(file=request.FILES["file"], release=RELEASE)
    return JsonResponse({"name": doc.file.name, "url": doc.file.url, "release": RELEASE}, status=201)
