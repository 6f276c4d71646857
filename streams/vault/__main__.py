"""``python -m streams.vault generate-key [--id ID]``: print a new master key (development)."""

from __future__ import annotations

import argparse
import sys

from streams.vault.master import generate_master_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.vault", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate-key", help="print the base64 of 32 random bytes")
    generate.add_argument("--id", help="print 'ID:<key>', the keyring form for rotation")
    args = parser.parse_args(argv)
    key = generate_master_key()
    sys.stdout.write(f"{args.id}:{key}\n" if args.id else f"{key}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
