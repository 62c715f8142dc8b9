"""
For the console's browser tests: a real C{twistd tm20} process (accounts made with
C{tm20-admin user create}), Debian's Chromium driven by selenium (headless, a fresh profile), and
blocking helpers that the tests run in threads (C{deferToThread}) so that simulated terminals keep
running on the test's reactor meanwhile.

Chromium and chromedriver are Debian packages (C{make browser-deps} installs them); they are
required, never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.test_twistd import TWISTD, freePort, waitForPort

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN = str(Path(sys.executable).parent / "tm20-admin")
PASSWORD = "console test password"
API_TOKEN = "console-test-token-0123456789"
#: The flags without which Chromium stalls on a machine with no internet.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

_T = TypeVar("_T")


class ConsoleServer:
    """A C{twistd tm20} with console accounts C{admin}, C{operator} and C{viewer}."""

    def __init__(self, database: str | None = None, *extra: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tm20-console-"))
        self.database = database or f"sqlite:{self.dir / 'tm20.sqlite3'}"
        self.port = freePort()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wsURL(self) -> str:
        return f"ws://127.0.0.1:{self.port}/pub/chat"

    def start(self) -> None:
        password = self.dir / "password"
        password.write_text(PASSWORD + "\n")
        for name in ("admin", "operator", "viewer"):
            subprocess.run(
                [ADMIN, "user", "create", name, "--role", name, "--password-file", str(password)],
                check=True,
                capture_output=True,
                env={**os.environ, "DATABASE_URL": self.database},
            )
        log = (self.dir / "twistd.log").open("wb")
        self.proc = subprocess.Popen(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--port",
                f"tcp:{self.port}:interface=127.0.0.1",
                "--database",
                self.database,
                "--api-token",
                f"tests:{API_TOKEN}",
                "--sse-heartbeat",
                "1s",
                "--event-poll-interval",
                "0.2s",
                *self.extra,
            ],
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        waitForPort(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One blocking REST call with the test token (setup and checks only)."""
        request = Request(
            f"{self.base}/api{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
        )
        with urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def post(
        self, path: str, fields: dict[str, str], cookie: str | None, origin: str | None
    ) -> tuple[int, str]:
        """A form POST as a script (not the browser) would send it: status and body."""
        data = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie is not None:
            headers["Cookie"] = f"tm20_console={cookie}"
        if origin is not None:
            headers["Origin"] = origin
        request = Request(f"{self.base}{path}", data=data, method="POST", headers=headers)
        try:
            with urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except HTTPError as e:
            return e.code, e.read().decode()

    def get(self, path: str, cookie: str) -> tuple[int, dict[str, str], bytes]:
        request = Request(f"{self.base}{path}", headers={"Cookie": f"tm20_console={cookie}"})
        try:
            with urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except HTTPError as e:
            return e.code, dict(e.headers), e.read()


def startBrowser(width: int = 1280, height: int = 900) -> WebDriver:
    """Headless Chromium with a fresh profile (removed when the driver quits)."""
    profile = tempfile.mkdtemp(prefix="tm20-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    quit_ = driver.quit

    def quitAndClean() -> None:
        try:
            quit_()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quitAndClean  # type: ignore[method-assign]
    return driver


def login(driver: WebDriver, server: ConsoleServer, name: str, password: str = PASSWORD) -> None:
    driver.delete_all_cookies()
    driver.get(f"{server.base}/admin/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()


def sessionCookie(driver: WebDriver) -> str:
    cookie = driver.get_cookie("tm20_console")
    assert cookie is not None, "not logged in"
    return str(cookie["value"])


def pageCSRF(driver: WebDriver) -> str:
    """The CSRF token of the page's forms."""
    return str(driver.find_element(By.NAME, "csrf").get_attribute("value"))


def waitFor(check: Callable[[], _T], what: str, timeout: float = 10.0) -> _T:
    """Poll C{check} until it returns something true (blocking; run it in a thread)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a page still loading: try again
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def waitForPage(driver: WebDriver, urlPart: str, timeout: float = 10.0) -> None:
    """
    Wait until the page whose URL contains C{urlPart} has replaced the one before and is
    loaded: what a click that submits a form leads to (blocking; run it in a thread).
    """

    def loaded() -> bool:
        return urlPart in driver.current_url and (
            driver.execute_script("return document.readyState") == "complete"
        )

    waitFor(loaded, f"the page {urlPart!r} loaded", timeout)


def axeViolations(driver: WebDriver) -> list[dict[str, Any]]:
    """The serious and critical axe-core violations of the current page."""
    from axe_selenium_python import Axe

    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    return [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
