"""`recsys keys new --scope read [--scope write]`: a fresh API key and its RECSYS_API_KEYS entry.

The key is printed once; the server is configured with the entry, which holds only the key's SHA-256
(serving/auth.py). Several entries are joined with commas.
"""

from __future__ import annotations

import argparse


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from serving.auth import ENV, new_key

    key, entry = new_key(args.scope)
    print(f"key:    {key}")
    print(f"config: {entry}")
    print(f"# give the key to the client (Authorization: Bearer <key>); add the entry to {ENV}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys for the service").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("new", help="print a new key and its hashed RECSYS_API_KEYS entry")
    p.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["read", "write", "admin"],
        help="repeat for several: read (recommendations), write (feedback, consent, erasure), admin (reload)",
    )
    p.set_defaults(func=_cmd_keys_new)
