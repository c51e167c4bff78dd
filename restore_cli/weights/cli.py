"""``restore weights list`` and ``restore weights pull TASK``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from ..errors import RestoreError
from .registry import REGISTRY

app = typer.Typer(no_args_is_help=True, help="List and download the pinned weights of each task.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="Hugging Face cache directory (default: the standard HF cache).")


@app.command("list")
def list_weights(cache_dir: Optional[Path] = CacheDirOpt) -> None:
    """Show each task's weights: Hub file, size, pinned sha256, where a copy is, license."""
    from .hub import present  # imports huggingface_hub: only when a command runs

    table = Table("task", "size", "sha256", "present", "license")
    table.add_column("source", overflow="fold")
    for rec in REGISTRY.values():
        where, path = present(rec, cache_dir)
        table.add_row(
            rec.task,
            decimal(path.stat().st_size) if path else "-",
            rec.sha256[:12] if rec.sha256 else "untrained",
            where,
            rec.license,
            rec.weights_id,
        )
    Console().print(table)


@app.command()
def pull(
    task: str = typer.Argument(..., help=f"One of: {', '.join(REGISTRY)}."),
    endpoint: Optional[str] = typer.Option(None, help="Hub URL (default: $RESTORE_HF_ENDPOINT, $HF_ENDPOINT, huggingface.co)."),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Download a task's weights into the Hub cache and verify their sha256."""
    from .hub import pull as pull_weights

    try:
        res = pull_weights(task, endpoint, cache_dir)
    except RestoreError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"{task}: {res.path} (sha256 {res.sha256[:12]}, {res.source})")
