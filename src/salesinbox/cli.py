"""The command line: set-up, users, tokens, accounts, keys, serving.

Every command reads the same settings as the web app (``SALESINBOX_*``),
migrates the database if needed, and calls the same use cases.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from salesinbox import bootstrap
from salesinbox.domain.accounts import AccountKind, Security, SyncStart
from salesinbox.domain.errors import DomainError
from salesinbox.domain.tenancy import Actor
from salesinbox.services import accounts, sync, sync_status, tokens, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.services.unit_of_work import Deps
from salesinbox.settings import Settings

app = typer.Typer(help="salesinbox: email sync and a Sales Inbox beside your CRM.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
user_app = typer.Typer(help="Users of the workspace.", no_args_is_help=True)
token_app = typer.Typer(help="Personal API tokens.", no_args_is_help=True)
account_app = typer.Typer(help="Connected email accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for stored secrets.", no_args_is_help=True)
outbox_app = typer.Typer(help="Outgoing mail.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(account_app, name="account")
app.add_typer(keys_app, name="keys")
app.add_typer(outbox_app, name="outbox")

T = TypeVar("T")


def _run(work: Callable[[Deps], Awaitable[T]]) -> T:
    """Migrate, wire, run one use case, and turn an expected failure into words and exit 1."""
    settings = Settings()
    bootstrap.prepare(settings)
    runtime = bootstrap.build_runtime(settings, images=False)

    async def main() -> T:
        try:
            return await work(runtime.deps)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None


async def _actor_by_email(deps: Deps, email: str) -> Actor:
    company_id, user_id = await workspace.find_user_by_email(deps, email)
    actor = await workspace.actor_for(deps, company_id, user_id)
    if actor is None:
        raise DomainError(f"The user {email} is deactivated.")
    return actor


async def _acting_admin(deps: Deps, as_email: str | None) -> Actor:
    return await _actor_by_email(deps, as_email) if as_email else await workspace.sole_company_admin(deps)


@app.command()
def init(
    company: Annotated[str, typer.Option(help="The company's name.")],
    admin_email: Annotated[str, typer.Option(help="The first admin's login email.")],
    admin_password: Annotated[str, typer.Option(help="The first admin's password.")],
    plan: Annotated[str, typer.Option(help="essential, advanced, growth, premium or ultimate.")] = "growth",
    admin_name: Annotated[str, typer.Option(help="The admin's display name.")] = "",
) -> None:
    """Create the company and its first admin (what the first-run page does)."""
    async def work(deps: Deps):
        return await workspace.initialize_company(deps, company_name=company, admin_email=admin_email,
                                                  admin_password=admin_password, admin_name=admin_name, plan=plan)

    created_company, admin = _run(work)
    typer.echo(f"Created {created_company.name} ({created_company.plan.value} plan) with admin {admin.email}")
    typer.echo(str(created_company.id))


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = Settings()
    bootstrap.prepare(settings)
    typer.echo("Database is up to date.")


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="Initial password.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    as_email: Annotated[
        str | None, typer.Option("--as", help="Acting admin (needed when several companies exist).")
    ] = None,
) -> None:
    """Add a user to the company."""
    async def work(deps: Deps):
        actor = await _acting_admin(deps, as_email)
        return await workspace.add_user(deps, actor, email=email, password=password, name=name, admin=admin)

    user = _run(work)
    typer.echo(f"Added {user.email} ({user.role.value})")
    typer.echo(str(user.id))


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "CLI token",
) -> None:
    """Create a personal API token; the token is printed on the last line, once."""
    async def work(deps: Deps):
        return await tokens.create_token(deps, await _actor_by_email(deps, user), name)

    new = _run(work)
    typer.echo(f"Token {new.token.name} for {user} (shown once):")
    typer.echo(new.secret)


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"use HOST:PORT, got {value!r}", param_hint=option)
    return host.strip("[]"), int(port)


@account_app.command("add")
def account_add(
    owner: Annotated[str, typer.Option(help="The owning user's email.")],
    address: Annotated[str, typer.Option(help="The mailbox's email address.")],
    imap: Annotated[str, typer.Option(help="IMAP server as HOST:PORT.")],
    smtp: Annotated[str, typer.Option(help="SMTP server as HOST:PORT.")],
    login: Annotated[str, typer.Option(help="Login name on both servers.")],
    password: Annotated[str, typer.Option(help="Password or app password.")],
    security: Annotated[Security, typer.Option(help="tls, starttls or none, for both servers.")] = Security.TLS,
    provider: Annotated[str, typer.Option(help="gmail, microsoft, yahoo, icloud, zoho, fastmail or other.")] = "other",
    team: Annotated[bool, typer.Option("--team", help="A team account shared with --member users.")] = False,
    member: Annotated[list[str] | None, typer.Option(help="A team member's email; repeat for more.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Log in first; save nothing unless it works.")] = False,
    sync_since: Annotated[
        SyncStart, typer.Option("--sync-since", help="How far back to import: 3d, 1m, 3m, 1y or all.")
    ] = SyncStart.ONE_MONTH,
) -> None:
    """Connect an account; prints its id on the last line. `account test ID` checks the logins."""
    imap_host, imap_port = _host_port(imap, "--imap")
    smtp_host, smtp_port = _host_port(smtp, "--smtp")

    async def work(deps: Deps):
        actor = await _actor_by_email(deps, owner)
        member_ids = [(await workspace.find_user_by_email(deps, m))[1] for m in member or []]
        data = AccountInput(
            address=address, login=login, password=password, provider=provider,
            kind=AccountKind.TEAM if team else AccountKind.PRIVATE, imap_host=imap_host, imap_port=imap_port,
            imap_security=security, smtp_host=smtp_host, smtp_port=smtp_port, smtp_security=security,
            member_ids=member_ids, sync_start=sync_since)
        return await accounts.connect_account(deps, actor, data, verify=verify)

    view = _run(work)
    typer.echo(f"Connected {view.address} ({view.kind.value} account)")
    typer.echo(str(view.id))


@account_app.command("test")
def account_test(account_id: Annotated[uuid.UUID, typer.Argument(help="The account's id.")]) -> None:
    """Log in to the account's IMAP and SMTP servers; exit 0 only when both work."""
    async def work(deps: Deps):
        company_id, owner_id = await accounts.owner_of_account(deps, account_id)
        actor = await workspace.actor_for(deps, company_id, owner_id)
        if actor is None:
            raise DomainError("The account's owner is deactivated.")
        return await accounts.test_account(deps, actor, account_id)

    report = _run(work)
    if report.ok:
        typer.echo("IMAP and SMTP both logged in.")
        return
    for message in report.messages:
        typer.echo(message, err=True)
    raise typer.Exit(1)


@account_app.command("confirm-deletions")
def account_confirm_deletions(account_id: Annotated[uuid.UUID, typer.Argument(help="The account's id.")]) -> None:
    """Apply a mass deletion the sync held back (more than half of a folder vanished at once)."""
    released = _run(lambda deps: sync.confirm_held_deletions(deps, account_id))
    typer.echo(f"{released} folder(s) will apply their deletions on the next sync." if released
               else "Nothing is held back for this account.")


@app.command("sync")
def sync_command(
    account_id: Annotated[uuid.UUID | None, typer.Argument(help="One account; all accounts when left out.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One complete pass, then exit (0 on success).")] = False,
) -> None:
    """Sync mail: one pass with --once, else keep syncing (IDLE) until interrupted."""
    from salesinbox.cli_progress import SyncProgress

    if not once:
        _run(lambda deps: _sync_forever(deps, account_id))
        return

    async def work(deps: Deps) -> bool:
        ids = [account_id] if account_id else [s.id for s in await sync_status.account_statuses(deps)]
        ok = True
        with SyncProgress() as progress:
            for one in ids:
                try:
                    await sync.sync_account_once(deps, one, progress.for_account(str(one)))
                except sync.SyncFailed as exc:
                    typer.echo(f"Sync of {one} failed: {exc}", err=True)
                    ok = False
        return ok

    if not _run(work):
        raise typer.Exit(1)


async def _sync_forever(deps: Deps, account_id: uuid.UUID | None) -> None:
    from salesinbox.workers.sync_supervisor import supervise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    typer.echo("Syncing; Ctrl+C stops.")
    await supervise(deps, stop, [account_id] if account_id else None)


@app.command("send")
def send_command(
    account: Annotated[uuid.UUID, typer.Option(help="The sending account's id.")],
    to: Annotated[list[str], typer.Option(help="A recipient; repeat for more.")],
    cc: Annotated[list[str] | None, typer.Option(help="A Cc recipient; repeat for more.")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="A Bcc recipient; repeat for more.")] = None,
    subject: Annotated[str, typer.Option(help="The subject line.")] = "",
    text: Annotated[str, typer.Option(help="The plain-text body.")] = "",
    attach: Annotated[list[Path] | None, typer.Option(help="A file to attach; repeat for more.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Sending again with the same key returns the first message, sends nothing.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 120.0,
) -> None:
    """Send a message as the account's owner; prints its id on the last line; exit 0 once it is sent."""
    import mimetypes

    from salesinbox.services import outbox

    files = [
        outbox.Attachment(p.name, mimetypes.guess_type(p.name)[0] or "application/octet-stream", p.read_bytes())
        for p in attach or []
    ]

    async def work(deps: Deps):
        company_id, owner_id = await accounts.owner_of_account(deps, account)
        actor = await workspace.actor_for(deps, company_id, owner_id)
        outgoing = outbox.OutgoingMessage(
            account_id=account, to=to, cc=cc or [], bcc=bcc or [], subject=subject, text=text, attachments=files
        )
        await outbox.recover(deps, account_id=account)  # a run killed earlier with this key left it "sending"
        queued = await outbox.enqueue(deps, actor, outgoing, idempotency_key=idempotency_key)
        if queued.status in ("queued", "scheduled"):
            await outbox.deliver(deps, company_id, queued.id)
        return await outbox.wait_for_outcome(deps, actor, queued.id, wait)

    view = _run(work)
    if view.status != "sent":
        typer.echo(f"Not sent ({view.status}): {view.last_error or 'still waiting'}", err=True)
    typer.echo(str(view.id))
    if view.status != "sent":
        raise typer.Exit(1)


@outbox_app.command("deliver")
def outbox_deliver(
    account: Annotated[uuid.UUID | None, typer.Option(help="Only this account's messages.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Repair, send what is due, then exit.")] = False,
) -> None:
    """Send what is due and repair what a dead process left: once with --once, else until interrupted."""
    from salesinbox.services import outbox

    if not once:
        _run(lambda deps: _deliver_forever(deps, account))
        return

    async def work(deps: Deps) -> int:
        await outbox.recover(deps, account_id=account)
        return await outbox.deliver_due(deps, account_id=account)

    typer.echo(f"{_run(work)} message(s) attempted.")


async def _deliver_forever(deps: Deps, account_id: uuid.UUID | None) -> None:
    from salesinbox.workers.outbox_worker import keep_sending

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    typer.echo("Sending; Ctrl+C stops.")
    await keep_sending(deps, stop, account_id)


@app.command("status")
def status_command(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Sync state of every account."""
    statuses = _run(sync_status.account_statuses)
    if as_json:
        typer.echo(json.dumps([_status_json(s) for s in statuses], indent=2))
        return
    for s in statuses:
        typer.echo(f"{s.address}  {s.state}  {s.synced}/{s.server_total} mirrored  {s.messages} messages  "
                   f"{s.conversations} conversations  last sync {s.last_sync or 'never'}"
                   + (f"\n  {s.last_error}" if s.last_error else ""))


def _status_json(s) -> dict:
    data = dataclasses.asdict(s)
    data["id"] = str(s.id)
    data["last_sync"] = s.last_sync.isoformat() if s.last_sync else None
    for folder in data["folders"]:
        folder["last_sync"] = folder["last_sync"].isoformat() if folder["last_sync"] else None
    return data


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key for SALESINBOX_SECRET_KEYS."""
    from salesinbox.adapters.secrets import generate_key

    typer.echo(generate_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the newest key.

    With SALESINBOX_SECRET_KEYS: put the new key first, run this, then drop the old keys.
    With the embedded key file: a new key is added, everything re-encrypted, old keys removed.
    """
    settings = Settings()
    bootstrap.prepare(settings)
    count = bootstrap.rotate_secret_keys(settings)
    typer.echo(f"Re-encrypted {count} secret(s) with the newest key.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (SALESINBOX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SALESINBOX_PORT).")] = None,
) -> None:
    """Serve the web app and the API."""
    import uvicorn

    settings = Settings()
    bootstrap.prepare(settings)
    bootstrap.configure_logging(settings)
    uvicorn.run(bootstrap.build_app(settings), host=host or settings.host, port=port or settings.port,
                log_config=None, proxy_headers=False)


@app.command()
def worker(
    role: Annotated[str, typer.Option(help="sync: keep a fair share of the accounts in sync (leases); "
                                           "jobs: send the outbox and settle drafts; web: serve pages and the API.")],
    host: Annotated[str | None, typer.Option(help="web: interface to listen on (SALESINBOX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="web: port (SALESINBOX_PORT).")] = None,
) -> None:
    """Run one role of a scaled-out deployment; start as many of each as needed (serve runs all three in one)."""
    if role not in ("sync", "jobs", "web"):
        typer.echo(f"Error: unknown role {role!r}; use sync, jobs or web.", err=True)
        raise typer.Exit(2)
    settings = Settings()
    bootstrap.prepare(settings)
    bootstrap.configure_logging(settings)
    if role == "web":
        import uvicorn

        uvicorn.run(bootstrap.build_app(settings, run_sync=False), host=host or settings.host,
                    port=port or settings.port, log_config=None, proxy_headers=False)
        return
    _run(lambda deps: _until_signalled(deps, role))


async def _until_signalled(deps: Deps, role: str) -> None:
    from salesinbox.workers.outbox_worker import keep_sending
    from salesinbox.workers.sync_supervisor import supervise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    typer.echo(f"Worker ({role}) running; Ctrl+C stops.")
    await (supervise(deps, stop) if role == "sync" else keep_sending(deps, stop))


def main() -> None:
    bootstrap.tune_gc()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        bootstrap.skip_final_collections()
