"""WSGI entry point: ``mysite.wsgi:application`` (gunicorn, as shipit.yml's web.wsgi says)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
