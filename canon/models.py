"""What the canon files in ``canon/`` hold, as last loaded by ``manage.py load_canon``.

The files are the source of truth; these rows are a copy for the admin to search and inspect.
Only the loader (``canon.sync``) writes them, and the admin cannot edit them.
``position`` fields keep each list in the order the file gives it.
"""

from __future__ import annotations

from django.db import models


class CanonFile(models.Model):
    """One canon file as loaded: every other canon row comes from one of these."""

    name = models.CharField(max_length=200, unique=True)
    version = models.CharField(max_length=100)
    generated_at_utc = models.CharField(max_length=40, blank=True)
    sha256 = models.CharField("SHA-256", max_length=64)
    # auto_now: the loader saves a file row only when its content changed, so this is the
    # time the current content was loaded, not the time of the last (no-op) run.
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (version {self.version})"


class Flow(models.Model):
    """A capability and the commands that prove it."""

    source = models.ForeignKey(CanonFile, on_delete=models.CASCADE, related_name="flows")
    flow_id = models.CharField("id", max_length=100, unique=True)
    position = models.PositiveIntegerField()
    description = models.TextField()
    expected_evidence = models.TextField()
    status = models.CharField(max_length=300, blank=True)
    # The status's leading word (IMPLEMENTED, PARTIAL, ...), so the admin can filter on it
    # while ``status`` keeps its free-text note.
    state = models.CharField("status", max_length=40, blank=True)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.flow_id


class FlowStep(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    command = models.TextField()

    class Meta:
        ordering = ["flow__position", "position"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "position"], name="unique_step_position")
        ]

    def __str__(self) -> str:
        return f"{self.flow.flow_id} step {self.position}"


class ShubModule(models.Model):
    """The upstream module the gateway fronts, and its security status."""

    source = models.ForeignKey(CanonFile, on_delete=models.CASCADE, related_name="modules")
    name = models.CharField(max_length=100, unique=True)
    alias = models.CharField(max_length=100)
    role = models.TextField()
    version = models.CharField(max_length=100)
    internal_port = models.PositiveIntegerField()
    published_port = models.PositiveIntegerField(null=True, blank=True)
    canon_version = models.CharField(max_length=100)
    proxy_status = models.CharField(max_length=100)
    proxy_details = models.JSONField()
    verification_flows = models.JSONField()
    status = models.CharField(max_length=300)

    def __str__(self) -> str:
        return self.name


class ShubEndpoint(models.Model):
    class Access(models.TextChoices):
        VIA_GATEWAY_OR_INTERNAL = "via_gateway_or_internal"
        INTERNAL_ONLY = "internal_only"
        VIA_MADRE = "via_madre"

    module = models.ForeignKey(ShubModule, on_delete=models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    method = models.CharField(max_length=20)
    description = models.TextField()
    access = models.CharField(max_length=40, choices=Access.choices)

    class Meta:
        ordering = ["module", "position"]
        constraints = [
            models.UniqueConstraint(fields=["module", "name"], name="unique_endpoint_name")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class KnownGap(models.Model):
    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    module = models.ForeignKey(ShubModule, on_delete=models.CASCADE, related_name="known_gaps")
    gap = models.CharField(max_length=100)
    position = models.PositiveIntegerField()
    description = models.TextField()
    severity = models.CharField(max_length=20, choices=Severity.choices)
    remediation = models.TextField()

    class Meta:
        ordering = ["module", "position"]
        constraints = [models.UniqueConstraint(fields=["module", "gap"], name="unique_gap")]

    def __str__(self) -> str:
        return self.gap


# Every model loaded from the canon files, in loading order.
CANON_MODELS: tuple[type[models.Model], ...] = (
    CanonFile,
    Flow,
    FlowStep,
    ShubModule,
    ShubEndpoint,
    KnownGap,
)
