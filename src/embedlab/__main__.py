"""``python -m embedlab COMMAND``: ``doctor`` (what is set up, what is missing)."""

from __future__ import annotations

import sys

COMMANDS = {"doctor": "what is set up and what is missing, with a one-line fix per problem"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print("usage: python -m embedlab COMMAND\n")
        print("\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items()))
        return 0 if args and args[0] in ("-h", "--help") else 2
    from embedlab import doctor

    return doctor.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
