"""The canon in the admin: searchable, filterable, read-only.

The files in ``canon/`` are the source of truth and ``manage.py load_canon`` the only writer,
so nobody may add, change or delete here: with the view permission alone, Django renders every
detail page read-only. Each canon page says so (``templates/admin/canon/``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from .models import CanonFile, Flow, FlowStep, KnownGap, ShubEndpoint, ShubModule

# The admin classes are generic only in django-stubs; at run time they cannot be subscripted.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
    _TabularInline = admin.TabularInline[Any, Any]
else:
    _ModelAdmin = admin.ModelAdmin
    _TabularInline = admin.TabularInline


class ReadOnlyAdmin(_ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(_TabularInline):
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _short(text: str) -> str:
    return Truncator(text).chars(100)


class FlowStepInline(ReadOnlyInline):
    model = FlowStep
    fields = ("position", "command")


@admin.register(Flow)
class FlowAdmin(ReadOnlyAdmin):
    # No source column: every flow comes from the flows file (the detail page names it), and
    # the column pushed the list out of its pane at 1280 px.
    list_display = ("flow_id", "status", "short_description", "step_count")
    list_filter = ("state",)
    search_fields = ("flow_id", "description")
    fields = ("flow_id", "status", "description", "expected_evidence", "position", "source")
    inlines = (FlowStepInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Flow]:
        flows: QuerySet[Flow] = super().get_queryset(request).annotate(step_count=Count("steps"))
        return flows

    @admin.display(description="description")
    def short_description(self, flow: Flow) -> str:
        return _short(flow.description)

    @admin.display(description="steps", ordering="step_count")
    def step_count(self, flow: Any) -> int:
        count: int = flow.step_count
        return count


@admin.register(FlowStep)
class FlowStepAdmin(ReadOnlyAdmin):
    list_display = ("flow", "position", "command")
    list_filter = ("flow__state",)
    search_fields = ("command", "flow__flow_id")
    list_select_related = ("flow",)


class ShubEndpointInline(ReadOnlyInline):
    model = ShubEndpoint
    fields = ("name", "method", "path", "access")


class KnownGapInline(ReadOnlyInline):
    model = KnownGap
    fields = ("gap", "severity", "description")


@admin.register(ShubModule)
class ShubModuleAdmin(ReadOnlyAdmin):
    list_display = ("name", "alias", "version", "proxy_status", "status", "source")
    search_fields = ("name", "alias", "role")
    list_select_related = ("source",)
    fields = (
        ("name", "alias", "version"),
        "role",
        ("internal_port", "published_port"),
        ("status", "proxy_status"),
        "pretty_proxy_details",
        "verification_flows",
        ("canon_version", "source"),
    )
    readonly_fields = ("pretty_proxy_details",)
    inlines = (ShubEndpointInline, KnownGapInline)

    @admin.display(description="proxy details")
    def pretty_proxy_details(self, module: ShubModule) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(module.proxy_details, indent=2))


@admin.register(ShubEndpoint)
class ShubEndpointAdmin(ReadOnlyAdmin):
    list_display = ("name", "method", "path", "access", "module")
    list_filter = ("access", "method")
    search_fields = ("path", "name", "description")
    list_select_related = ("module",)


@admin.register(KnownGap)
class KnownGapAdmin(ReadOnlyAdmin):
    list_display = ("gap", "severity", "short_description", "module")
    list_filter = ("severity",)
    search_fields = ("gap", "description", "remediation")
    list_select_related = ("module",)

    @admin.display(description="description")
    def short_description(self, gap: KnownGap) -> str:
        return _short(gap.description)


@admin.register(CanonFile)
class CanonFileAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "generated_at_utc", "short_sha256", "loaded_at")
    search_fields = ("name",)

    @admin.display(description="SHA-256")
    def short_sha256(self, file: CanonFile) -> str:
        return file.sha256[:12]
