"""`ragqueue-admin`: operator commands that work on the store directly (the `ragq` client only speaks HTTP)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.settings import get_settings
from shared.store.base import StoreUnavailableError
from shared.store.migration import copy_collection, copy_uploads
from shared.store.sqlite_store import SQLiteStore

app = typer.Typer(help="Operate a ragqueue deployment's store.", no_args_is_help=True, add_completion=False)
err = Console(stderr=True)


@app.command("migrate-store")
def migrate_store(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            envvar="VECTOR_STORE_URL",
            help="Target PostgreSQL URL (default: VECTOR_STORE_URL)",
            show_default=False,
        ),
    ],
    collection: Annotated[
        list[str] | None, typer.Option("--collection", "-c", help="Copy only this collection (repeatable)")
    ] = None,
    uploads: Annotated[bool, typer.Option(help="Also copy the uploaded files under DATA_DIR/uploads")] = True,
) -> None:
    """Copy embedded collections (SQLite files under DATA_DIR) into PostgreSQL, vectors kept, counts checked.

    Safe to run again: writes are content-keyed, so a copy that stopped half way resumes.
    Queries keep working on both sides while it runs.
    Afterwards set VECTOR_STORE_URL for the API and workers and restart them.

    Examples:

      ragqueue-admin migrate-store --to postgresql://rag@db:5432/rag

      DATA_DIR=/srv/rag ragqueue-admin migrate-store -c manuals -c notes --to postgresql://rag@db/rag
    """
    from shared.store.postgres_store import PostgresStore

    settings = get_settings()
    source = SQLiteStore(settings.collections_dir, settings.uploads_dir)
    names = collection or source.collection_names()
    missing = [n for n in names if not source.collection(n).exists()]
    if missing:
        err.print(f"[red]error:[/] no embedded collection {', '.join(map(repr, missing))} under {settings.DATA_DIR}")
        raise typer.Exit(2)
    if not names:
        err.print(f"[red]error:[/] no embedded collections under {settings.DATA_DIR} (set DATA_DIR)")
        raise typer.Exit(2)
    try:
        target = PostgresStore(to, settings.uploads_dir)
    except StoreUnavailableError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(3) from None
    failed = False
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
        ) as progress:
            for name in names:
                task = progress.add_task(f"{name} (chunks)", total=source.collection(name).info().chunks)
                report = copy_collection(source, target, name, partial(progress.advance, task))
                verdict = "counts match" if report.counts_match else "[red]COUNTS DIFFER[/]"
                progress.console.print(
                    f"{name}: {report.documents} documents / {report.chunks} chunks copied; PostgreSQL holds "
                    f"{report.target_documents} / {report.target_chunks}: {verdict}"
                )
                failed |= not report.counts_match
        if uploads:
            err.print(f"uploads: {copy_uploads(settings.uploads_dir, target)} files copied")
    finally:
        target.close()
    if failed:
        err.print("[red]error:[/] some counts differ (the target collection held other documents?); see above")
        raise typer.Exit(1)
    err.print("Done. Set VECTOR_STORE_URL for the API and every worker, then restart them.")


@app.callback()
def main() -> None:
    """Operator commands for ragqueue's store (run on a machine with the server's settings)."""
