from django.apps import AppConfig


class ShubProxyConfig(AppConfig):
    name = "shubproxy"
    verbose_name = "vx11 gateway"
    default_auto_field = "django.db.models.BigAutoField"
