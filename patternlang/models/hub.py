"""Whether the Hugging Face hub can be reached, decided once per process before a download.

Unreachable, huggingface_hub retries each request five times with back-off: a load of a hub
name takes some 40 s to fail. `hub_access()` asks once, with one quick connection (DNS
included, `HUB_TIMEOUT_S` at most), and when the hub cannot be reached it turns
huggingface_hub's offline mode on for the load: a model already in the local Hugging Face
cache still loads, any other fails at once with a message that says the hub is unreachable.

The check connects to `HF_ENDPOINT` (default https://huggingface.co), or to the HTTPS proxy
when one is set. `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`) skips it: offline by choice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlsplit

HUB_TIMEOUT_S = 2.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "on", "yes", "true")


def offline_by_choice() -> bool:
    """True when the user turned the hub off (`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`)."""
    if any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    constants = sys.modules.get("huggingface_hub.constants")  # read at its import; set there by hand too
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_address() -> tuple[str, int]:
    """The host and port a download connects to first: the HTTPS proxy's, else the hub's."""
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy and not _bypasses_proxy(host):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, endpoint.port or (80 if endpoint.scheme == "http" else 443)


def _bypasses_proxy(host: str) -> bool:
    exceptions = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    for entry in (item.strip().lower().lstrip(".") for item in exceptions.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


@lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """True when a connection to the hub (or its proxy) opens within `HUB_TIMEOUT_S`; asked once.

    The connection runs in a thread so that a slow name lookup, which no socket timeout
    bounds, cannot hold the caller longer either. `hub_reachable.cache_clear()` asks again.
    """
    host, port = hub_address()
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=HUB_TIMEOUT_S):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, name="patternlang-hub-check", daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S + 0.5)
    return bool(outcome and outcome[0])


def hub_state() -> str:
    """"online", "offline" (by the user's choice) or "unreachable" (found so, once per process)."""
    if offline_by_choice():
        return "offline"
    return "online" if hub_reachable() else "unreachable"


@contextlib.contextmanager
def hub_access() -> Iterator[str]:
    """Run a download with the hub's state known: yields `hub_state()`; when "unreachable",
    huggingface_hub's offline mode is on inside the block, so nothing retries."""
    state = hub_state()
    if state != "unreachable":
        yield state
        return
    with forced_offline():
        yield state


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """huggingface_hub's offline mode inside the block (`HF_HUB_OFFLINE=1`, and the value it
    read at import), as it was after."""
    import huggingface_hub.constants as constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def unreachable_reason(state: str) -> str:
    """Why nothing could be downloaded, for an error message."""
    if state == "offline":
        return "offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)"
    host, port = hub_address()
    return f"the hub is unreachable (offline? no connection to {host}:{port})"
