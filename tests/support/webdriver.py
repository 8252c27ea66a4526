"""A headless Chromium driven through chromedriver's W3C WebDriver HTTP API, with httpx (no Selenium).

``browser(tmp)`` starts chromedriver on a port the OS picks (``--port=0``; it prints the port), opens one
headless session with a fresh profile under ``tmp``, and stops chromedriver by pid at the end. It raises
``BrowserUnavailable`` when chromium or chromedriver is not installed or cannot start (tests skip then).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

HEADLESS_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
_STARTED = re.compile(r"started successfully on port (\d+)")
T = TypeVar("T")


class BrowserUnavailable(RuntimeError):
    """chromium or chromedriver is missing or does not start here."""


class WebDriverError(AssertionError):
    """A WebDriver command answered with an error."""


class Session:
    """One browser session: the few W3C commands the report tests use."""

    def __init__(self, http: httpx.Client, session_id: str) -> None:
        self.http = http
        self.base = f"/session/{session_id}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, self.base + path, json=body)
        value = response.json().get("value")
        if response.status_code != 200:
            raise WebDriverError(f"{method} {path}: {response.status_code} {value}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find_all(self, css: str) -> list[str]:
        """Element ids of every element matching ``css`` (none is not an error)."""
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [item[ELEMENT_KEY] for item in found]

    def find(self, css: str) -> str:
        found = self.find_all(css)
        if not found:
            raise WebDriverError(f"no element matches {css!r}")
        return found[0]

    def attribute(self, element: str, name: str) -> str | None:
        value = self._call("GET", f"/element/{element}/attribute/{name}")
        return None if value is None else str(value)

    def text(self, element: str) -> str:
        return str(self._call("GET", f"/element/{element}/text"))

    def displayed(self, element: str) -> bool:
        return bool(self._call("GET", f"/element/{element}/displayed"))

    def click(self, element: str) -> None:
        self._call("POST", f"/element/{element}/click", {})

    def type(self, element: str, text: str) -> None:
        self._call("POST", f"/element/{element}/value", {"text": text})

    def clear(self, element: str) -> None:
        self._call("POST", f"/element/{element}/clear", {})

    def script(self, source: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, condition: Callable[[], T | None], what: str, timeout_s: float = 30.0) -> T:
        """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out waiting for {what}")
            time.sleep(0.05)


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise BrowserUnavailable(
            "chromium or chromedriver is not installed (apt-get install -y chromium chromium-driver)"
        )
    return chromium, driver


@contextmanager
def browser(tmp: Path, *, startup_s: float = 60.0) -> Iterator[Session]:
    chromium, driver = _binaries()
    process, port = _start_driver(driver, tmp / "chromedriver.log", startup_s)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=startup_s) as http:
            capabilities = {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [*HEADLESS_ARGS, f"--user-data-dir={tmp / 'profile'}", "--window-size=1300,1000"],
                },
            }
            response = http.post("/session", json={"capabilities": {"alwaysMatch": capabilities}})
            value = response.json().get("value", {})
            if response.status_code != 200:
                raise BrowserUnavailable(
                    f"chromium does not start under chromedriver: {value.get('message')}"
                )
            session = Session(http, value["sessionId"])
            try:
                yield session
            finally:
                http.delete(session.base)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_driver(driver: str, log: Path, startup_s: float) -> tuple[subprocess.Popen[str], int]:
    """chromedriver on a port the OS picks, and that port. With ``--port=0`` chromedriver picks a port and
    then binds IPv4 on it; on a busy machine that bind can fail, and it exits with "IPv4 port not available"
    (seen here with several test runs at once). That, and only that, is tried again."""
    for attempt in range(5):
        process = subprocess.Popen(
            [driver, "--port=0", f"--log-path={log}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            return process, _read_port(process, startup_s)
        except BrowserUnavailable as exc:
            process.kill()
            process.wait()
            if "port not available" not in str(exc) or attempt == 4:
                raise
    raise AssertionError("unreachable")


def _read_port(process: subprocess.Popen[str], timeout_s: float) -> int:
    """The port chromedriver reports on stdout; its output is read in a thread so that a silent driver
    cannot hang the test."""
    found: list[int] = []
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = _STARTED.search(line)
            if match:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout_s)
    if not found:
        raise BrowserUnavailable(f"chromedriver did not start: {''.join(lines).strip() or 'no output'}")
    return found[0]
