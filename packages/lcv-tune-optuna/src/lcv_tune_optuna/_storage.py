"""Open the study storage a tuner config names: a SQLite file by default, any SQLAlchemy URL, or a journal file."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from lcv_config import ConfigError, LcvError

DEFAULT_FILE = "study.db"
"""The SQLite file created in the work directory when no storage is given."""

_DRIVER_EXTRAS = {"postgresql": "postgres", "postgres": "postgres"}
_CONNECT_TIMEOUT_S = 10


def default_storage_url(workdir: str | Path) -> str:
    """Return the URL of the default SQLite study file in ``workdir``."""
    return f"sqlite:///{(Path(workdir).resolve() / DEFAULT_FILE).as_posix()}"


def open_storage(
    storage: str | Path | optuna.storages.BaseStorage | None,
    workdir: str | Path,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    failed_trial_max_retry: int | None = None,
) -> optuna.storages.BaseStorage:
    """Return an Optuna storage for ``storage``.

    ``None`` is a SQLite file ``study.db`` in ``workdir``; a string with ``://`` is a SQLAlchemy URL; a path ending in
    ``.log`` is a journal file; a path ending in ``.db``/``.sqlite``/``.sqlite3`` is a SQLite file.

    Raises:
        ConfigError: The value is not a storage lcv knows how to open.
        LcvError: The database driver is missing or the database cannot be reached.
    """
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if storage is None:
        url = default_storage_url(workdir)
    else:
        text = str(storage)
        if "://" not in text:
            path = Path(text)
            if not path.is_absolute():
                path = Path(workdir) / path
            if path.suffix == ".log":
                path.parent.mkdir(parents=True, exist_ok=True)
                from optuna.storages.journal import JournalFileBackend, JournalStorage

                return JournalStorage(JournalFileBackend(str(path)))
            if path.suffix in (".db", ".sqlite", ".sqlite3"):
                path.parent.mkdir(parents=True, exist_ok=True)
                url = f"sqlite:///{path.resolve().as_posix()}"
            else:
                raise ConfigError(
                    f"Storage {text!r} is neither a URL nor a file lcv knows. Expected a SQLAlchemy URL "
                    "('sqlite:///study.db', 'postgresql+psycopg://user:pw@host/db'), a journal file ending in '.log', "
                    "or a SQLite file ending in '.db'.",
                    "tune.storage",
                )
        else:
            url = text
    return _rdb(url, heartbeat_interval, grace_period, failed_trial_max_retry)


def _rdb(
    url: str, heartbeat_interval: int | None, grace_period: int | None, failed_trial_max_retry: int | None
) -> optuna.storages.RDBStorage:
    dialect = url.split("://", 1)[0].split("+", 1)[0].lower()
    engine_kwargs: dict[str, Any] = {}
    if dialect in ("postgresql", "postgres", "mysql"):
        # Without a timeout an unreachable host blocks for the OS TCP timeout (minutes).
        engine_kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    heartbeat: dict[str, Any] = {}
    # Heartbeats are marked experimental since optuna 2.8 but are the documented way to retry a killed worker's trial.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, message=".*[Hh]eartbeat")
    if heartbeat_interval is not None:
        heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
            heartbeat["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=failed_trial_max_retry
            )
        else:
            heartbeat["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(
                max_retry=failed_trial_max_retry
            )
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs or None, **heartbeat)
    except ImportError as exc:
        extra = _DRIVER_EXTRAS.get(dialect)
        fix = f"pip install 'lcv-tune-optuna[{extra}]'" if extra else "install the database driver the URL names"
        raise LcvError(
            f"The database driver for storage {_redact(url)!r} is not installed ({exc}). Fix: {fix}."
        ) from None
    except Exception as exc:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.NoSuchModuleError):
            raise ConfigError(
                f"Storage URL {_redact(url)!r} names an unknown database dialect: {exc}.", "tune.storage"
            ) from None
        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise LcvError(
                f"Cannot open the study storage {_redact(url)!r}: {reason}. Check that the database server is running "
                "and reachable from this machine, and the URL's host, port, user and database."
            ) from None
        raise


def _redact(url: str) -> str:
    """Hide the password of a URL in messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, at, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
