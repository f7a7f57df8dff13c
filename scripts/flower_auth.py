"""Print Flower's `user:password` for `make up`, generating one into .env on first run (never a built-in default).

    .venv/bin/python scripts/flower_auth.py [--env-file .env]

The credentials go to stdout (for the caller to hand Flower as FLOWER_BASIC_AUTH); where they came from goes
to stderr, so a person learns where to find a generated password.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from shared.settings import Settings

GENERATED_USER = "ragqueue"


def ensure(env_file: Path) -> str:
    """The configured credentials, or new ones appended to `env_file` (mode 600) when none are set."""
    configured = Settings(_env_file=env_file).FLOWER_BASIC_AUTH  # type: ignore[call-arg]
    if configured is not None:
        return configured.get_secret_value()
    value = f"{GENERATED_USER}:{secrets.token_urlsafe(24)}"
    existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    env_file.write_text(f"{existing}{separator}FLOWER_BASIC_AUTH={value}\n", encoding="utf-8")
    env_file.chmod(0o600)
    print(
        f"Flower login generated: user {GENERATED_USER!r}, password in {env_file.resolve()} (FLOWER_BASIC_AUTH)",
        file=sys.stderr,
    )
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=Path(".env"))
    print(ensure(parser.parse_args().env_file))


if __name__ == "__main__":
    main()
