from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from django.views.static import serve

from uploads import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", views.health),
    path("", views.index),
    path("upload", views.upload),
    # media is the app's to serve (static files are Caddy's): small uploads, no DEBUG needed
    re_path(r"^media/(?P<path>.+)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
