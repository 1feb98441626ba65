"""Auth commands of the sharing mode: create the auth file, add / change / remove users, list them.

``make share`` calls ``auth init --if-missing``. Passwords are random (``secrets``) unless read from stdin
(``--password-stdin``), printed once and stored only as bcrypt hashes; the file is written atomically, mode 0600.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecg_core.core import auth


def _path(args: argparse.Namespace) -> Path:
    return Path(args.file).expanduser() if args.file else auth.auth_file()


def _print_passwords(plain: dict[str, str], path: Path) -> None:
    print(f"auth file: {path} (mode 0600; keep it private, it is never committed)")
    print("passwords (shown only now; give each to its user over a private channel):")
    for user, password in plain.items():
        print(f"  {user:<12} {password}")
    print("change a password or add a user:  .venv/bin/python -m ecg_core auth add-user NAME --role viewer|editor")
    print("remove a user:                    .venv/bin/python -m ecg_core auth remove-user NAME")


def cmd_init(args: argparse.Namespace) -> int:
    path = _path(args)
    if args.if_missing and path.exists():
        cfg = auth.load_auth_config(path)  # an unusable file stops here with the reason
        print(f"auth file: {path} ({len(cfg.users)} users: "
              + ", ".join(f"{u} ({auth.user_role(d)})" for u, d in cfg.users.items())
              + "). Change users with `python -m ecg_core auth add-user NAME --role viewer|editor`.")
        return 0
    _print_passwords(auth.create_auth_config(path), path)
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    path = _path(args)
    given = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    password = auth.set_user(path, args.name, args.role, given)
    print(f"user {args.name.lower()} ({args.role}) saved in {path}")
    if not given:
        print(f"password (shown only now): {password}")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    path = _path(args)
    auth.remove_user(path, args.name)
    print(f"user {args.name.lower()} removed from {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    cfg = auth.load_auth_config(_path(args))
    print(f"auth file: {cfg.path}")
    for u, d in cfg.users.items():
        print(f"  {u:<12} {auth.user_role(d)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    p = sub.add_parser("auth", help="users of the sharing mode (make share): init, add-user, remove-user, list")
    cmds = p.add_subparsers(dest="auth_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--file", help=f"the auth file (default ${auth.AUTH_FILE_ENV} or <ECG_INSIGHT_HOME>/auth.yaml)")
    i = cmds.add_parser("init", parents=[common], help="create the auth file (a viewer and an editor, random "
                                                       "passwords printed once)")
    i.add_argument("--if-missing", action="store_true", help="keep (and check) an existing file")
    i.set_defaults(func=cmd_init)
    a = cmds.add_parser("add-user", parents=[common], help="add a user or change a user's role and password")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=auth.ROLES)
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin (default: random)")
    a.set_defaults(func=cmd_add_user)
    r = cmds.add_parser("remove-user", parents=[common], help="remove a user")
    r.add_argument("name")
    r.set_defaults(func=cmd_remove_user)
    ls = cmds.add_parser("list", parents=[common], help="list the users and their roles")
    ls.set_defaults(func=cmd_list)
