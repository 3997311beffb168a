"""``python -m bot …`` — the commands of INTERFACES.md: the parser and the
dispatch. The commands live by audience: :mod:`bot.cli.processes` (the
operator's), :mod:`bot.cli.organisers` (the organisers'), :mod:`bot.cli.chat`
(the terminal chat); :mod:`bot.cli.logs` sets up logging."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.cli.chat import terminal_chat
from bot.cli.logs import setup_logging
from bot.cli.organisers import broadcast, export, flows_check, ideas_set_status, phases
from bot.cli.processes import clock, migrate, serve, set_webhook, worker
from bot.config import ConfigError, Settings, load_settings
from bot.conversation.flows import FlowError

# --- the parser, one helper a command with options -------------------------------------------

_Commands = argparse._SubParsersAction  # what add_subparsers returns


def _add_serve(sub: _Commands) -> None:
    command = sub.add_parser("serve", help="run the web process (and, on SQLite, everything else)")
    command.add_argument("--host", default="127.0.0.1")
    command.add_argument("--port", type=int, default=None, help="default: $PORT, else 8080")
    command.add_argument(
        "--web-only",
        action="store_true",
        help="PostgreSQL: only store and acknowledge; `worker`s process the messages",
    )


def _add_broadcast(sub: _Commands) -> None:
    from channels.registry import bulk_names

    command = sub.add_parser("broadcast", help="an announcement to residents who opted in, each in their language")
    command.add_argument(
        "--text", action="append", metavar="LANG=TEXT", help="text per language (repeat); LANG=@file reads a file"
    )
    command.add_argument("--phase", help="use this phase's announcement, translated")
    command.add_argument(
        "--fallback", metavar="LANG", help="text for residents whose language has none (else they are skipped)"
    )
    command.add_argument("--channel", action="append", choices=list(bulk_names()))
    command.add_argument("--language", action="append")
    command.add_argument("--district", action="append")
    command.add_argument("--topic", action="append", help="residents whose ideas have this topic")
    command.add_argument(
        "--source", action="append", help="residents who arrived this way (a campaign, or partner:CODE)"
    )
    command.add_argument("--dry-run", action="store_true", help="show the audience and cost; send nothing")
    command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command.add_argument("--key", help="idempotency key (default: derived from texts and audience)")
    command.add_argument("--no-wait", action="store_true", help="queue and return without following delivery")


def _add_ideas(sub: _Commands) -> None:
    command = sub.add_parser("ideas", help="list and moderate ideas")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the newest ideas as a table (no personal data)")
    listing.add_argument("--status", choices=["new", "approved", "hidden", "spam"], default=None)
    listing.add_argument("--q", default=None, help="a reference, or words of the text")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    setting = actions.add_parser("set-status", help="moderate one idea")
    setting.add_argument("reference")
    setting.add_argument("status", choices=["new", "approved", "hidden", "spam"])
    setting.add_argument("--no-notify", action="store_true", help="do not tell the resident")


def _add_chat(sub: _Commands) -> None:
    command = sub.add_parser("chat", help="talk to the bot in the terminal (reads stdin)")
    command.add_argument("--lang", default=None, help="language code, e.g. de or en")
    command.add_argument("--resident", default="local", help="who you are in the terminal (default: local)")


def _add_export(sub: _Commands) -> None:
    command = sub.add_parser("export", help="export ideas or feedback, pseudonymised")
    command.add_argument("what", choices=["ideas", "feedback"])
    command.add_argument(
        "--format",
        choices=["csv", "json", "adhocracy4", "decidim"],
        default="csv",
        help="adhocracy4, decidim: ideas in that platform's import shape (JSON)",
    )
    command.add_argument("--output", default=None, help="file to write (default: stdout)")


def _add_privacy(sub: _Commands) -> None:
    command = sub.add_parser("privacy", help="retention purge and the key that encrypts addresses")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    purge = actions.add_parser("purge", help="empty and remove personal data past its retention period")
    purge.add_argument("--dry-run", action="store_true", help="print what would go per kind; change nothing")
    rotate = actions.add_parser("rotate-key", help="re-encrypt the stored addresses with a new DATA_KEY")
    rotate.add_argument("--new-key", default=None, help="the new DATA_KEY")


def _add_admin(sub: _Commands) -> None:
    command = sub.add_parser("admin", help="dashboard accounts")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create-user", help="create or update an account; the password is the first line of stdin"
    )
    create.add_argument("email")
    create.add_argument("--role", choices=["viewer", "moderator", "organiser"], required=True)
    actions.add_parser("list-users", help="accounts with role and last sign-in")


def _add_channel_admin(sub: _Commands) -> None:
    """``CHANNEL set-webhook`` for each channel that registers its webhook with the provider."""
    from channels.registry import specs

    for known in specs():
        if known.registers_webhook:
            command = sub.add_parser(known.name, help=f"{known.name} administration")
            command.add_argument(
                "action", choices=["set-webhook"], help=f"register PUBLIC_URL/webhooks/... with {known.name}"
            )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot", description="Kiezstimme participation bot")
    sub = p.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("worker", help="deliver the outbox and finish stored messages (PostgreSQL deployments)")
    sub.add_parser(
        "clock", help="the one scheduler process: reminders and phase announcements (PostgreSQL deployments)"
    )
    sub.add_parser("phases", help="the phases with their state and the next scheduled reminders")
    _add_broadcast(sub)
    _add_ideas(sub)
    _add_chat(sub)
    _add_export(sub)
    _add_channel_admin(sub)
    _add_privacy(sub)
    _add_admin(sub)
    flows = sub.add_parser("flows", help="work with the flow files")
    flows.add_argument("action", choices=["check"])
    return p


# --- main -------------------------------------------------------------------------------


def _run(settings: Settings, args: argparse.Namespace) -> int:
    """The command's exit code."""
    if args.command == "serve":
        asyncio.run(serve(settings, args.host, args.port or settings.port, web_only=args.web_only))
    elif args.command == "migrate":
        return asyncio.run(migrate(settings))
    elif args.command == "clock":
        return asyncio.run(clock(settings))
    elif args.command == "phases":
        return asyncio.run(phases(settings))
    elif args.command == "broadcast":
        return asyncio.run(broadcast(settings, args))
    elif args.command == "ideas":
        if args.action == "list":
            from bot.cli.ideas_list import ideas_list

            return asyncio.run(ideas_list(settings, args.status, args.q, args.limit))
        return asyncio.run(ideas_set_status(settings, args.reference, args.status, not args.no_notify))
    elif args.command == "worker":
        return asyncio.run(worker(settings))
    elif args.command == "chat":
        return asyncio.run(terminal_chat(settings, args.lang, args.resident, sys.stdin, sys.stdout))
    elif args.command == "export":
        return asyncio.run(export(settings, args.what, args.format, args.output))
    elif args.command == "privacy":
        return _privacy(settings, args)
    elif args.command == "admin":
        from bot.cli import admin

        if args.action == "create-user":
            return asyncio.run(admin.create_user(settings, args.email, args.role))
        return asyncio.run(admin.list_users(settings))
    elif getattr(args, "action", None) == "set-webhook":
        return asyncio.run(set_webhook(settings, args.command))
    elif args.command == "flows":
        return flows_check(settings, sys.stdout)
    return 0


def _privacy(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "purge":
        from bot.cli.privacy import purge

        return asyncio.run(purge(settings, args.dry_run))
    from bot.cli.privacy_keys import rotate_key

    return asyncio.run(rotate_key(settings, args.new_key))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        return _run(settings, args)
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except ConfigError as exc:  # found after start-up, e.g. a DATA_KEY that cannot open the stored addresses
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
