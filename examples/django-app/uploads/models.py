from django.db import models


class Document(models.Model):
    """An uploaded file (kept in MEDIA_ROOT/docs/), and which release received it."""

    file = models.FileField(upload_to="docs/")
    release = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.file.name
