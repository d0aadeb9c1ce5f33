"""Who you are and where the service is: accounts, their resolution and the saved-accounts file.

An :class:`Account` is resolved in this order, field by field:

1. arguments given to :class:`~qiskit_rest_provider.ProviderService` (or :func:`resolve_account`);
2. ``QISKIT_REST_*`` environment variables (``QISKIT_REST_TOKEN``, ``QISKIT_REST_URL``,
   ``QISKIT_REST_INSTANCE``, ``QISKIT_REST_CHANNEL``, ``QISKIT_REST_IAM_URL``,
   ``QISKIT_REST_VERIFY``);
3. a saved account: the one named by ``name=`` (or ``QISKIT_REST_ACCOUNT``), else the saved default.

The saved account is consulted only when neither the arguments nor the environment provide a
token, so a saved token is never sent to a URL that came from somewhere else.

Saved accounts live in one JSON file, ``~/.qiskit/qiskit-rest-provider.json`` unless the
environment variable ``QISKIT_REST_CONFIG_FILE`` names another path. The file is written
atomically (temporary file + rename) with mode ``0600``: it holds API tokens.

This module imports nothing from Qiskit's heavy parts: the transport (``client/``) uses it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .exceptions import AccountError

logger = logging.getLogger(__name__)

#: The channel of the current IBM Quantum Platform (IAM API key -> bearer token, ``Service-CRN``).
PLATFORM = "ibm_quantum_platform"
#: Alias of :data:`PLATFORM` (as in qiskit-ibm-runtime).
CLOUD = "ibm_cloud"
#: The retired IBM Quantum Platform Classic channel (``loginWithToken``, ``X-Access-Token``).
CLASSIC = "ibm_quantum"
CHANNELS = (PLATFORM, CLOUD, CLASSIC)

#: Default service URL per channel.
DEFAULT_URLS = {
    PLATFORM: "https://quantum.cloud.ibm.com",
    CLOUD: "https://quantum.cloud.ibm.com",
    CLASSIC: "https://auth.quantum-computing.ibm.com",
}
IBM_IAM_URL = "https://iam.cloud.ibm.com"

ENV_PREFIX = "QISKIT_REST_"
ENV_CONFIG_FILE = "QISKIT_REST_CONFIG_FILE"
ENV_ACCOUNT = "QISKIT_REST_ACCOUNT"
DEFAULT_CONFIG_FILE = Path("~/.qiskit/qiskit-rest-provider.json")
DEFAULT_ACCOUNT_NAME = "default"

_FIELDS = ("channel", "url", "token", "instance", "verify", "proxies", "iam_url")


def _mask(secret: str | None) -> str:
    """Show that a secret is set without revealing it (not even a prefix)."""
    return "None" if not secret else "'***'"


@dataclass
class Account:
    """Credentials and service location for one :class:`~qiskit_rest_provider.ProviderService`.

    Attributes:
        channel: ``"ibm_quantum_platform"`` (alias ``"ibm_cloud"``) or ``"ibm_quantum"`` (classic).
        url: the service root, e.g. ``"http://127.0.0.1:8000"``; the runtime API is under
            ``{url}/api/v1`` (platform) or ``{url}/runtime`` (classic).
        token: the API key (platform) or API token (classic). Never printed by ``repr``.
        instance: a CRN (platform; ``None`` lets the service pick the token's instance) or
            ``"hub/group/project"`` (classic).
        verify: TLS verification: ``True``, ``False`` or a CA bundle path.
        proxies: ``requests``-style proxies mapping, e.g. ``{"https": "http://proxy:3128"}``.
        iam_url: where the platform channel exchanges the API key for a bearer token; defaults
            to IBM's IAM for IBM hosts and to ``url`` for any other host.
    """

    channel: str
    url: str
    token: str = field(repr=False)
    instance: str | None = None
    verify: bool | str = True
    proxies: dict | None = None
    iam_url: str | None = None

    def __repr__(self) -> str:
        return (
            f"Account(channel={self.channel!r}, url={self.url!r}, token={_mask(self.token)}, "
            f"instance={self.instance!r}, verify={self.verify!r}, proxies={self.proxies!r}, "
            f"iam_url={self.iam_url!r})"
        )

    @property
    def is_classic(self) -> bool:
        """Whether this is the classic (``loginWithToken``) channel."""
        return self.channel == CLASSIC

    @property
    def root_url(self) -> str:
        """The service root without a trailing slash (``/api/v1`` suffix removed if given)."""
        url = self.url.rstrip("/")
        for suffix in ("/api/v1", "/runtime"):
            if url.endswith(suffix):
                return url[: -len(suffix)]
        return url

    @property
    def runtime_url(self) -> str:
        """Base URL of the runtime REST API for this channel."""
        return self.root_url + ("/runtime" if self.is_classic else "/api/v1")

    @property
    def resolved_iam_url(self) -> str:
        """The IAM root used by the platform channel (see :attr:`iam_url`)."""
        if self.iam_url:
            return self.iam_url.rstrip("/")
        host = urlparse(self.root_url).hostname or ""
        if host == "cloud.ibm.com" or host.endswith(".cloud.ibm.com"):
            return IBM_IAM_URL
        return self.root_url

    @property
    def hgp(self) -> tuple[str, str, str] | None:
        """The classic instance split into ``(hub, group, project)``, or ``None``."""
        if not self.instance or not self.is_classic:
            return None
        hub, group, project = self.instance.split("/")
        return hub, group, project

    def validate(self) -> Account:
        """Check every field; raise :class:`AccountError` naming the first problem.

        Returns:
            ``self``, so calls can be chained.
        """
        if self.channel not in CHANNELS:
            raise AccountError(
                f"Invalid channel {self.channel!r}: expected one of {', '.join(CHANNELS)}."
            )
        if not self.token or not isinstance(self.token, str):
            raise AccountError(
                "No API token: pass token=..., set QISKIT_REST_TOKEN, or save an account with "
                "ProviderService.save_account(token=...)."
            )
        if any(c.isspace() for c in self.token):
            raise AccountError("Invalid token: it contains whitespace.")
        parsed = urlparse(self.url or "")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AccountError(f"Invalid url {self.url!r}: expected http(s)://host[:port].")
        if self.iam_url is not None:
            parsed = urlparse(self.iam_url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise AccountError(f"Invalid iam_url {self.iam_url!r}: expected http(s)://host.")
        if self.instance is not None:
            if not isinstance(self.instance, str) or not self.instance.strip():
                raise AccountError(f"Invalid instance {self.instance!r}: expected a string.")
            if self.is_classic:
                parts = self.instance.split("/")
                if len(parts) != 3 or not all(parts):
                    raise AccountError(
                        f"Invalid instance {self.instance!r} for channel 'ibm_quantum': "
                        "expected 'hub/group/project'."
                    )
        if self.proxies is not None and not isinstance(self.proxies, dict):
            raise AccountError(f"Invalid proxies {self.proxies!r}: expected a dict.")
        if not isinstance(self.verify, (bool, str)):
            raise AccountError(f"Invalid verify {self.verify!r}: expected a bool or a path.")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the accounts file (includes the token)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Account:
        """Build from the accounts-file form, ignoring unknown keys (forward compatibility)."""
        return cls(**{k: data[k] for k in _FIELDS if k in data})


def default_url(channel: str, instance: str | None = None) -> str:
    """IBM's service root for ``channel``; a platform CRN outside us-east selects its region.

    ``crn:v1:bluemix:public:quantum-computing:eu-de:...`` gives
    ``https://eu-de.quantum.cloud.ibm.com`` (as qiskit-ibm-runtime derives it).
    """
    url = DEFAULT_URLS[channel]
    if channel != CLASSIC and instance and instance.startswith("crn:"):
        fields = instance.split(":")
        region = fields[5] if len(fields) > 5 else ""
        if region and region != "us-east" and all(c.isalnum() or c == "-" for c in region):
            url = f"https://{region}.quantum.cloud.ibm.com"
    return url


# --------------------------------------------------------------------------- environment


def _parse_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise AccountError(f"Invalid {name}={value!r}: expected true or false.")


def account_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The account fields set by ``QISKIT_REST_*`` environment variables (empty ones ignored)."""
    env = os.environ if environ is None else environ
    fields: dict[str, Any] = {}
    for name in ("channel", "url", "token", "instance", "iam_url"):
        value = env.get(ENV_PREFIX + name.upper())
        if value:
            fields[name] = value.strip()
    verify = env.get(ENV_PREFIX + "VERIFY")
    if verify:
        low = verify.strip().lower()
        if low in ("0", "1", "true", "false", "yes", "no", "on", "off"):
            fields["verify"] = _parse_bool(ENV_PREFIX + "VERIFY", verify)
        else:  # a CA bundle path
            fields["verify"] = verify
    return fields


# --------------------------------------------------------------------------- accounts file


def config_file(filename: str | os.PathLike | None = None) -> Path:
    """Path of the saved-accounts file: ``filename`` > ``$QISKIT_REST_CONFIG_FILE`` > default."""
    if filename is not None:
        return Path(filename).expanduser()
    env = os.environ.get(ENV_CONFIG_FILE)
    if env:
        return Path(env).expanduser()
    return DEFAULT_CONFIG_FILE.expanduser()


def _read_file(path: Path) -> dict[str, Any]:
    """Load the accounts file, or an empty store if it does not exist."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"default": None, "accounts": {}}
    except OSError as err:
        raise AccountError(f"Cannot read accounts file {path}: {err.strerror}") from None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning(
                "Accounts file %s is readable by other users (mode %o); it should be 0600.",
                path,
                mode,
            )
    except OSError:  # pragma: no cover - raced with a delete
        pass
    if not raw.strip():
        return {"default": None, "accounts": {}}
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise AccountError(f"Accounts file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("accounts", {}), dict):
        raise AccountError(f"Accounts file {path} has an unexpected layout.")
    data.setdefault("accounts", {})
    data.setdefault("default", None)
    return data


def _write_file(path: Path, data: dict[str, Any]) -> None:
    """Write the accounts file atomically with mode 0600 (never readable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".accounts-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_account(
    account: Account,
    *,
    name: str | None = None,
    set_as_default: bool = False,
    overwrite: bool = False,
    filename: str | os.PathLike | None = None,
) -> str:
    """Store ``account`` under ``name`` in the accounts file.

    The first account saved becomes the default even without ``set_as_default``.

    Args:
        account: the account to save (validated first).
        name: the account's name; ``"default"`` when omitted.
        set_as_default: make it the account used when nothing else is given.
        overwrite: replace an existing account of the same name (else :class:`AccountError`).
        filename: accounts file to use instead of the default location.

    Returns:
        The name the account was saved under.
    """
    account.validate()
    name = name or DEFAULT_ACCOUNT_NAME
    path = config_file(filename)
    data = _read_file(path)
    if name in data["accounts"] and not overwrite:
        existing = data["accounts"][name]
        if existing != account.to_dict():
            raise AccountError(
                f"An account named {name!r} already exists in {path}; pass overwrite=True to "
                "replace it."
            )
    data["accounts"][name] = account.to_dict()
    if set_as_default or not data.get("default") or data["default"] not in data["accounts"]:
        data["default"] = name
    _write_file(path, data)
    logger.debug("Saved account %r to %s", name, path)
    return name


def saved_accounts(
    *,
    default: bool | None = None,
    channel: str | None = None,
    name: str | None = None,
    filename: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]]:
    """The saved accounts as ``{name: fields}``, optionally filtered.

    Args:
        default: ``True`` for only the default account, ``False`` for all but it.
        channel: only accounts of this channel.
        name: only the account of this name.
        filename: accounts file to use instead of the default location.

    Returns:
        Account fields per name; each also has ``"is_default"``. Tokens are included: this is the
        caller's own file.
    """
    data = _read_file(config_file(filename))
    out: dict[str, dict[str, Any]] = {}
    for acc_name, fields in data["accounts"].items():
        is_default = acc_name == data.get("default")
        if default is not None and is_default != default:
            continue
        if channel is not None and fields.get("channel") != channel:
            continue
        if name is not None and acc_name != name:
            continue
        out[acc_name] = {**fields, "is_default": is_default}
    return out


def delete_account(name: str | None = None, *, filename: str | os.PathLike | None = None) -> bool:
    """Delete the saved account ``name`` (the default account when omitted).

    Returns:
        ``True`` if an account was deleted, ``False`` if there was none of that name.
    """
    path = config_file(filename)
    data = _read_file(path)
    name = name or data.get("default")
    if not name or name not in data["accounts"]:
        return False
    del data["accounts"][name]
    if data.get("default") == name:
        data["default"] = None
    _write_file(path, data)
    return True


def load_saved_account(
    name: str | None = None, *, filename: str | os.PathLike | None = None
) -> Account | None:
    """The saved account ``name`` (or the default one); ``None`` if there is no default.

    Raises:
        AccountError: ``name`` was given but no account has that name.
    """
    path = config_file(filename)
    data = _read_file(path)
    if name is None:
        name = data.get("default")
        if not name or name not in data["accounts"]:
            return None
    elif name not in data["accounts"]:
        known = ", ".join(sorted(data["accounts"])) or "none"
        raise AccountError(f"No saved account named {name!r} in {path} (saved: {known}).")
    return Account.from_dict(data["accounts"][name])


# --------------------------------------------------------------------------- resolution


def resolve_account(
    *,
    channel: str | None = None,
    url: str | None = None,
    token: str | None = None,
    instance: str | None = None,
    verify: bool | str | None = None,
    proxies: dict | None = None,
    iam_url: str | None = None,
    name: str | None = None,
    filename: str | os.PathLike | None = None,
    environ: dict[str, str] | None = None,
) -> Account:
    """Resolve an :class:`Account` from arguments > environment > saved account (see module doc).

    Raises:
        AccountError: no token anywhere, an unknown saved account name, or an invalid field;
            the message names what is missing or wrong.
    """
    args = {
        "channel": channel,
        "url": url,
        "token": token,
        "instance": instance,
        "verify": verify,
        "proxies": proxies,
        "iam_url": iam_url,
    }
    args = {k: v for k, v in args.items() if v is not None}
    env = account_from_env(environ)
    env_vars = os.environ if environ is None else environ
    saved: dict[str, Any] = {}
    wanted = name or env_vars.get(ENV_ACCOUNT) or None
    if wanted is not None or ("token" not in args and "token" not in env):
        account = load_saved_account(wanted, filename=filename)
        if account is not None:
            saved = account.to_dict()
    merged: dict[str, Any] = {}
    for key in _FIELDS:
        for layer in (args, env, saved):
            if key in layer and layer[key] is not None:
                merged[key] = layer[key]
                break
    merged.setdefault("channel", PLATFORM)
    if merged["channel"] not in CHANNELS:
        raise AccountError(
            f"Invalid channel {merged['channel']!r}: expected one of {', '.join(CHANNELS)}."
        )
    merged.setdefault("verify", True)
    if "token" not in merged:
        where = config_file(filename)
        raise AccountError(
            "No API token: pass token=..., set QISKIT_REST_TOKEN, or save an account with "
            f"ProviderService.save_account(token=...) (no default account in {where})."
        )
    if "url" not in merged:
        if "channel" not in args and "channel" not in env and "channel" not in saved:
            # A token alone would otherwise go to IBM's cloud: say so instead of guessing.
            raise AccountError(
                "No url: pass url=... (the service root, e.g. the Base URL printed by "
                "`qiskit-rest-provider serve`), set QISKIT_REST_URL, or save an account with "
                "ProviderService.save_account(url=..., token=...); to use IBM Quantum's cloud "
                f"({DEFAULT_URLS[PLATFORM]}) pass channel='ibm_quantum_platform' explicitly."
            )
        merged["url"] = default_url(merged["channel"], merged.get("instance"))
    return Account(**merged).validate()
