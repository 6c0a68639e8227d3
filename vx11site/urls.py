"""The site's URLs. ``/shub/`` is not among them: the gateway's router sends it to the proxy
handler before Django resolves anything (``shubproxy.asgi.router``)."""

from django.contrib import admin
from django.urls import path, re_path
from django.views.generic import RedirectView

from vx11site import views

# The admin is this site's: its own name, "View site" leading to the landing page, and no
# navigation sidebar (the canon's lists are one click from the index, and the sidebar's 300 px
# pushed the flow list out of its pane at 1280 px).
admin.site.site_header = admin.site.site_title = views.SITE_NAME
admin.site.index_title = "Canon and users"
admin.site.site_url = "/"
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", views.home),
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    # The canon's pages lived under the proxy app's label before the canon became an app of
    # its own: old links and bookmarks keep working.
    re_path(
        r"^admin/shubproxy/(?P<rest>.*)\Z",
        RedirectView.as_view(url="/admin/canon/%(rest)s", permanent=True, query_string=True),
    ),
    path("admin/", admin.site.urls),
]

handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.not_found
handler500 = views.server_error
