"""The canon's tables, for a new database or adopted from one made before the canon became an
app of its own (the models were the ``shubproxy`` app's then, label and tables included).

The state is the models as they are; the database step either creates their tables or, where
``shubproxy_canonfile`` exists, renames the old tables and moves the content types (and with
them every permission granted on them) from ``shubproxy`` to ``canon``. ``migrate`` alone moves
an existing database over; nothing is copied, so ids and rows stay as they were.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import StateApps

# Parents before children: the order tables are created or renamed in.
MODELS = ("canonfile", "flow", "flowstep", "shubmodule", "shubendpoint", "knowngap")


def create_or_adopt(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    existing = set(schema_editor.connection.introspection.table_names())
    models_ = [apps.get_model("canon", name) for name in MODELS]
    if "shubproxy_canonfile" not in existing:
        for model in models_:
            schema_editor.create_model(model)
        return
    for model in models_:
        old = f"shubproxy_{model._meta.model_name}"
        schema_editor.alter_db_table(model, old, model._meta.db_table)
    content_types = apps.get_model("contenttypes", "ContentType")
    content_types.objects.using(schema_editor.connection.alias).filter(
        app_label="shubproxy", model__in=MODELS
    ).update(app_label="canon")
    # The old app's migration history goes with its tables: code from before the move would
    # find none of them and start afresh, rather than query tables that are gone.
    MigrationRecorder(schema_editor.connection).migration_qs.filter(app="shubproxy").delete()


def drop_or_return(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    for name in reversed(MODELS):
        schema_editor.delete_model(apps.get_model("canon", name))


class Migration(migrations.Migration):
    initial = True

    dependencies = [("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="CanonFile",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=200, unique=True)),
                        ("version", models.CharField(max_length=100)),
                        ("generated_at_utc", models.CharField(blank=True, max_length=40)),
                        ("sha256", models.CharField(max_length=64, verbose_name="SHA-256")),
                        ("loaded_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="Flow",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "flow_id",
                            models.CharField(max_length=100, unique=True, verbose_name="id"),
                        ),
                        ("position", models.PositiveIntegerField()),
                        ("description", models.TextField()),
                        ("expected_evidence", models.TextField()),
                        ("status", models.CharField(blank=True, max_length=300)),
                        (
                            "state",
                            models.CharField(blank=True, max_length=40, verbose_name="status"),
                        ),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="flows",
                                to="canon.canonfile",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["position"],
                    },
                ),
                migrations.CreateModel(
                    name="ShubModule",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100, unique=True)),
                        ("alias", models.CharField(max_length=100)),
                        ("role", models.TextField()),
                        ("version", models.CharField(max_length=100)),
                        ("internal_port", models.PositiveIntegerField()),
                        ("published_port", models.PositiveIntegerField(blank=True, null=True)),
                        ("canon_version", models.CharField(max_length=100)),
                        ("proxy_status", models.CharField(max_length=100)),
                        ("proxy_details", models.JSONField()),
                        ("verification_flows", models.JSONField()),
                        ("status", models.CharField(max_length=300)),
                        (
                            "source",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="modules",
                                to="canon.canonfile",
                            ),
                        ),
                    ],
                ),
                migrations.CreateModel(
                    name="FlowStep",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("position", models.PositiveIntegerField()),
                        ("command", models.TextField()),
                        (
                            "flow",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="steps",
                                to="canon.flow",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["flow__position", "position"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("flow", "position"), name="unique_step_position"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ShubEndpoint",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("position", models.PositiveIntegerField()),
                        ("path", models.CharField(max_length=500)),
                        ("method", models.CharField(max_length=20)),
                        ("description", models.TextField()),
                        (
                            "access",
                            models.CharField(
                                choices=[
                                    ("via_gateway_or_internal", "Via Gateway Or Internal"),
                                    ("internal_only", "Internal Only"),
                                    ("via_madre", "Via Madre"),
                                ],
                                max_length=40,
                            ),
                        ),
                        (
                            "module",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="endpoints",
                                to="canon.shubmodule",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["module", "position"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("module", "name"), name="unique_endpoint_name"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="KnownGap",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("gap", models.CharField(max_length=100)),
                        ("position", models.PositiveIntegerField()),
                        ("description", models.TextField()),
                        (
                            "severity",
                            models.CharField(
                                choices=[
                                    ("low", "Low"),
                                    ("medium", "Medium"),
                                    ("high", "High"),
                                    ("critical", "Critical"),
                                ],
                                max_length=20,
                            ),
                        ),
                        ("remediation", models.TextField()),
                        (
                            "module",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="known_gaps",
                                to="canon.shubmodule",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["module", "position"],
                        "constraints": [
                            models.UniqueConstraint(fields=("module", "gap"), name="unique_gap")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(create_or_adopt, drop_or_return),
    ]
