"""Fixtures of lcv-tune-optuna's tests: quiet Optuna, and a real PostgreSQL server from Debian's binaries.

The server is started by pytest-postgresql with ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (``.ci/run`` installs
Debian's ``postgresql``). Without the binaries the PostgreSQL tests skip with the reason, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

PG_CTLS = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
"""Debian's pg_ctl binaries, oldest version first."""

_ROOT_WRAPPER = """#!/bin/bash
# PostgreSQL refuses to run as root: run pg_ctl as the 'postgres' user, who must own the cluster's directories.
args=("$@")
for ((i=0; i<${#args[@]}; i++)); do
  case "${args[$i]}" in
    -D|--pgdata|-l|--log) p="${args[$((i+1))]}" ;;
    --pgdata=*) p="${args[$i]#--pgdata=}" ;;
    *) continue ;;
  esac
  d="$p"; [ -d "$d" ] || d=$(dirname "$p")
  chown -R postgres "$d"
  a=$(dirname "$d"); while [ "$a" != "/" ]; do chmod o+x "$a"; a=$(dirname "$a"); done
done
cd /
exec runuser -u postgres -- PG_CTL "${args[@]}"
"""


def _pg_ctl() -> str | None:
    if not PG_CTLS:
        return None
    real = PG_CTLS[-1]
    if os.geteuid() != 0:
        return real
    if shutil.which("runuser") is None:
        return None
    wrapper = Path(tempfile.mkdtemp(prefix="lcv-pg-ctl-")) / "pg_ctl"
    wrapper.write_text(_ROOT_WRAPPER.replace("PG_CTL", real), encoding="utf-8")
    wrapper.chmod(0o755)
    return str(wrapper)


PG_CTL = _pg_ctl()
_MISSING = (
    "PostgreSQL tests need Debian's postgresql binaries (/usr/lib/postgresql/*/bin/pg_ctl; "
    "apt-get install postgresql) and pytest-postgresql"
)

try:
    from pytest_postgresql import factories
except ImportError:  # pragma: no cover - the test dependency group installs it
    factories = None

if factories is not None and PG_CTL is not None:
    # The server's Unix socket goes to a world-writable folder: under nox, TMPDIR is a folder of the session that
    # the 'postgres' user (pg_ctl runs as it when the tests run as root) cannot write to.
    _SOCKETS = tempfile.mkdtemp(prefix="lcv-pg-sockets-", dir="/tmp")  # short: a socket path is limited to ~107 bytes
    os.chmod(_SOCKETS, 0o1777)
    postgresql_proc = factories.postgresql_proc(executable=PG_CTL, host="127.0.0.1", unixsocketdir=_SOCKETS)
    postgresql = factories.postgresql("postgresql_proc")

    @pytest.fixture
    def pg_url(postgresql: Any) -> Iterator[str]:
        """A SQLAlchemy URL of a fresh database on the test server, for Optuna."""
        info = postgresql.info
        password = f":{info.password}" if info.password else ""
        yield f"postgresql+psycopg://{info.user}{password}@{info.host}:{info.port}/{info.dbname}"

else:

    @pytest.fixture
    def pg_url() -> str:
        """Fail under CI=true, skip elsewhere: there is no PostgreSQL to start."""
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{_MISSING}; under CI=true these tests must run.")
        pytest.skip(f"{_MISSING}.")


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
