from django.apps import AppConfig


class CanonConfig(AppConfig):
    """The canon files, loaded into the database (``manage.py load_canon``) for the admin to
    show, read-only. The only app of the site with models."""

    name = "canon"
    verbose_name = "vx11 canon"
    default_auto_field = "django.db.models.BigAutoField"
