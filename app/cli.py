"""The `smiley` command: run the system, migrate the database, manage users."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import typer

from app import migrate
from app.commands import critique, datasets, fail, generation, judging, session, training
from app.models import Role
from app.observability.logging import configure_logging, log_web_worker_restarts
from app.observability.metrics import prepare_multiprocess_dir
from app.schemas.users import TokenCreate, UserCreate, UserOut, UserUpdate
from app.services import auth, users
from app.settings import get_settings

cli = typer.Typer(
    help="Smiley: human feedback for post-training language models.\n\n"
    "Start with `smiley up`: it prepares the data folder, migrates the database, "
    "creates the first admin (printing the password once) and serves web app and worker.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
users_cli = typer.Typer(help="Create, list and manage accounts.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API tokens for scripts.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(tokens_cli, name="tokens")
datasets.register(cli)
training.register(cli)
generation.register(cli)
critique.register(cli)
judging.register(cli)

EMBEDDED_WORKER_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]


# --- running ----------------------------------------------------------------------------------


def _prepare() -> None:
    settings = get_settings()
    settings.ensure_data_dir()
    migrate.upgrade()
    with session() as db:
        created = users.ensure_first_admin(db)
    if created is not None:
        user, password = created
        line = "=" * 66
        typer.echo(
            f"\n{line}\n  First run: Smiley made an admin account. This is shown ONCE.\n"
            f"    username: {user.username}\n    password: {password}\n"
            f"  Log in and choose your own password; make more accounts under Users.\n"
            f"{line}\n"
        )


def _worker_command(name: str, concurrency: int, queues: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--name",
        name,
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
    ]


@cli.command()
def up(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    worker: Annotated[bool, typer.Option(help="Also start a worker.")] = True,
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
) -> None:
    """Web app and a worker together, with the settings' defaults (SQLite, embedded broker)."""
    import uvicorn

    from app.main import create_app

    _prepare()
    settings = get_settings()
    process: subprocess.Popen[bytes] | None = None
    if worker:
        process = subprocess.Popen(
            _worker_command("smiley-up@%h", concurrency, "default,gpu"),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=_watch_worker, args=(process,), daemon=True).start()
    typer.echo(
        f"Smiley is at http://{host}:{port}  (data: {settings.data_dir}; "
        f"health: http://{host}:{port}/healthz)"
    )
    # uvicorn re-raises the SIGTERM it caught once it has shut down; with the default handler
    # that would kill this process before it stops the worker, so SIGTERM just returns here.
    signal.signal(signal.SIGTERM, lambda *_: None)
    configure_logging(settings)
    try:
        # log_config=None: the logging configured above (text or JSON, with request ids).
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    finally:
        if process is not None:
            _stop(process)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if `smiley up` itself is killed, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _watch_worker(process: subprocess.Popen[bytes]) -> None:
    code = process.wait()
    if code not in (0, -signal.SIGTERM):
        typer.secho(
            f"warning: the worker exited with code {code}; /healthz reports it down",
            fg=typer.colors.YELLOW,
            err=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # The worker's main process stops its own pool (a warm shutdown); the whole process
    # group is killed only if it has not finished in time.
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@cli.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Only the web app (for running at scale beside separate workers)."""
    import uvicorn

    _prepare()
    settings = get_settings()
    if workers > 1:
        # Each process counts its own requests into files here; a scrape adds them up.
        prepare_multiprocess_dir(settings.prometheus_dir)
        # The supervisor's own lines (a web process died, or was replaced) go to our log too;
        # unconfigured, this process dropped them and a server that never came up said nothing.
        configure_logging(settings)
        log_web_worker_restarts()
    # log_config=None: app.asgi configures logging (text or JSON, with request ids) itself.
    uvicorn.run(
        "app.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        factory=False,
        timeout_worker_healthcheck=settings.web_worker_start_seconds,
    )


@cli.command(name="worker")
def run_worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: default, gpu.")] = (
        "default,gpu"
    ),
    concurrency: Annotated[int, typer.Option(help="Processes.")] = 1,
    name: Annotated[str, typer.Option(help="Node name; %h is the host name.")] = "smiley@%h",
) -> None:
    """Only a Celery worker (for GPU machines at scale)."""
    from worker.celery_app import get_celery_app

    settings = get_settings()
    configure_logging(settings)
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--hostname={name}",
        "--loglevel=INFO",
    ]
    if settings.uses_embedded_broker:
        # The filesystem transport cannot broadcast; these features need it.
        argv += EMBEDDED_WORKER_FLAGS
    get_celery_app().worker_main(argv)


# --- database ---------------------------------------------------------------------------------


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    get_settings().ensure_data_dir()
    migrate.upgrade(revision=revision)
    typer.echo(f"database at {revision}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Undo migrations down to REVISION."""
    migrate.downgrade(revision=revision)
    typer.echo(f"database at {revision}")


# --- users ------------------------------------------------------------------------------------


def _print_user(user: UserOut) -> None:
    state = "active" if user.is_active else "deactivated"
    typer.echo(f"{user.id:>5}  {user.username:<24} {user.role.value:<11} {state}")


@users_cli.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Lower-case login name.")],
    role: Annotated[Role, typer.Option(help="labeler, admin or researcher.")] = Role.labeler,
    display_name: Annotated[str, typer.Option(help="Name shown in the app.")] = "",
    generate_password: Annotated[
        bool, typer.Option(help="Generate a password (the user must change it at first login).")
    ] = False,
) -> None:
    """Create an account. Asks for a password on a terminal; otherwise generates one."""
    password: str | None = None
    if not generate_password and sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session() as db:
        user, generated = users.create_user(
            db,
            UserCreate(username=username, role=role, display_name=display_name, password=password),
        )
    typer.echo(f"created {user.username} ({user.role.value})")
    if generated:
        typer.echo(f"password (shown once; to be changed at first login): {generated}")


@users_cli.command("list")
def users_list() -> None:
    """All accounts with their role and state."""
    with session() as db:
        for user in users.list_users(db):
            _print_user(UserOut.model_validate(user))


@users_cli.command("deactivate")
def users_deactivate(username: Annotated[str, typer.Argument()]) -> None:
    """Deactivate an account: it cannot log in and its sessions end. Labels are kept."""
    with session() as db:
        user = users.get_user_by_username(db, username)
        # acting=None: the machine's operator; the last-admin rule still holds.
        users.update_user(db, user.id, UserUpdate(is_active=False), acting=None)
    typer.echo(f"deactivated {user.username}")


@users_cli.command("activate")
def users_activate(username: Annotated[str, typer.Argument()]) -> None:
    """Let a deactivated account log in again."""
    with session() as db:
        user = users.get_user_by_username(db, username)
        users.update_user(db, user.id, UserUpdate(is_active=True), acting=None)
    typer.echo(f"activated {user.username}")


@users_cli.command("set-role")
def users_set_role(
    username: Annotated[str, typer.Argument()], role: Annotated[Role, typer.Argument()]
) -> None:
    """Change an account's role."""
    with session() as db:
        user = users.get_user_by_username(db, username)
        users.update_user(db, user.id, UserUpdate(role=role), acting=None)
    typer.echo(f"{user.username} is now {role.value}")


@users_cli.command("reset-password")
def users_reset_password(username: Annotated[str, typer.Argument()]) -> None:
    """Give an account a generated password (shown once) and end its sessions."""
    with session() as db:
        user = users.get_user_by_username(db, username)
        _, temporary = users.reset_password(db, user.id)
    typer.echo(f"temporary password for {user.username} (shown once): {temporary}")


@tokens_cli.command("create")
def tokens_create(
    username: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_in_days: Annotated[int | None, typer.Option(help="Lifetime; none by default.")] = None,
) -> None:
    """Make an API token for USERNAME and print it (once)."""
    with session() as db:
        user = users.get_user_by_username(db, username)
        if not user.is_active:
            raise fail(f"{user.username} is deactivated")
        _, token = auth.create_api_token(
            db, user, TokenCreate(name=name, expires_in_days=expires_in_days)
        )
    typer.echo(token)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
