from django.apps import AppConfig


class LegacyShubproxyConfig(AppConfig):
    name = "tests.canon.legacy"
    label = "shubproxy"
    default_auto_field = "django.db.models.BigAutoField"
