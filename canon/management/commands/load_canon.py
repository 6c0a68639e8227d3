"""``manage.py load_canon``: validate ``canon/*.json`` and make the database match them.

``--check`` compares without writing and exits non-zero when they differ, for CI or for an
operator wondering whether the admin shows what the files say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from canon.reader import Canon, CanonError, read_canon
from canon.sync import sync_canon


class Command(BaseCommand):
    help = (
        "Validate the canon files (CANONICAL_FLOWS_VX11.json, CANONICAL_SHUB_VX11.json) and load "
        "them into the database, which the admin shows read-only. The files are the source of "
        "truth: rows they no longer hold are deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Report differences between the files and the database without writing; "
            "exit with status 1 when there are any.",
        )
        parser.add_argument(
            "--canon-dir",
            type=Path,
            default=Path(settings.BASE_DIR) / "canon",
            help="Folder holding the canon files (default: canon/ in the project).",
        )

    def handle(self, *args: Any, check: bool, canon_dir: Path, **options: Any) -> None:
        try:
            canon = read_canon(canon_dir)
        except CanonError as exc:
            # CommandError: one line on stderr and exit status 1, no traceback.
            raise CommandError(f"{exc} (nothing was loaded)") from exc
        try:
            changes = sync_canon(canon, write=not check)
        except DatabaseError as exc:
            raise CommandError(f"the database cannot be used ({exc}); run migrate first?") from exc
        # Drift is what --check is for; a load lists its changes only when asked (-v 2), so
        # `make run` prints one line.
        if check or options["verbosity"] >= 2:
            for change in changes:
                self.stdout.write(f"  {change}")
        if check and changes:
            raise CommandError(
                f"the database differs from {canon_dir} in {len(changes)} place(s); "
                "run `manage.py load_canon` to load the files"
            )
        if check:
            self.stdout.write(f"The database matches {canon_dir}.")
        elif changes:
            self.stdout.write(
                f"Loaded {canon_dir} ({len(changes)} changes; -v 2 lists them): {_summary(canon)}."
            )
        else:
            self.stdout.write(f"The database already matches {canon_dir}: {_summary(canon)}.")


def _summary(canon: Canon) -> str:
    steps = sum(len(flow.verification_steps) for flow in canon.flows)
    shub = canon.shub
    return (
        f"{len(canon.flows)} flows ({steps} steps), module {shub.module.name} with "
        f"{len(shub.endpoints)} endpoints and {len(shub.known_gaps)} known gaps"
    )
