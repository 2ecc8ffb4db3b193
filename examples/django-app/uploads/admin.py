from django.contrib import admin

from uploads.models import Document


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("file", "release", "uploaded_at")
