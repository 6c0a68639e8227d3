from django.contrib import admin
from django.urls import path, re_path

from shubproxy import views

urlpatterns = [
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("admin/", admin.site.urls),
    re_path(r"^shub/(?P<path>.*)\Z", views.proxy),
]

handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.not_found
handler500 = views.server_error
