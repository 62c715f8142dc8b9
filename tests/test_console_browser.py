"""
The operator console end to end: a real C{twistd tm20} (SQLite, and PostgreSQL for the core
path), simulated terminals on this test's reactor, and Debian's Chromium driven by selenium.
Selenium blocks, so each browser step runs in a thread (L{threads.deferToThread}) while the
reactor keeps the simulated terminals talking.

Screenshots of the pages are saved in a temporary directory, or in C{TM20_SCREENSHOTS} when set
(C{make screenshots} sets it to C{docs/console}).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any, ClassVar

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tests.consolesupport import (
    ConsoleServer,
    axeViolations,
    login,
    pageCSRF,
    sessionCookie,
    startBrowser,
    waitFor,
    waitForPage,
)
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

XSS = "<script>alert(1)</script>"


def inThread(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return threads.deferToThread(f, *args, **kwargs)


class _ConsoleCase(TestCase):
    """One server and one browser for the class; a fresh login in each test."""

    timeout = 180
    server: ClassVar[ConsoleServer]
    driver: ClassVar[WebDriver]
    shots: ClassVar[Path]
    serverArgs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def database(cls) -> str | None:
        return None

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = ConsoleServer(cls.database(), *cls.serverArgs)
        cls.server.start()
        cls.driver = startBrowser()
        target = os.environ.get("TM20_SCREENSHOTS")
        cls.shots = Path(target) if target else Path(tempfile.mkdtemp(prefix="tm20-shots-"))
        cls.shots.mkdir(parents=True, exist_ok=True)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.driver.quit()
        cls.server.stop()

    def url(self, path: str) -> str:
        return f"{self.server.base}{path}"

    def terminal(self, sn: str, **kwargs: Any) -> TerminalConnection:
        """A simulated terminal connected to the server (disconnected at cleanup)."""
        device = SimulatedTerminal(sn, seed=len(sn), **kwargs)
        connection = TerminalConnection(
            device, self.server.wsURL(), reactor=reactor, regRetry=0.5, ackTimeout=2
        )
        connection.start()
        self.addCleanup(connection.disconnect)
        return connection

    def login(self, name: str) -> Deferred[Any]:
        def go() -> None:
            login(self.driver, self.server, name)
            waitFor(lambda: self.driver.current_url.endswith("/admin/"), "the board")

        return inThread(go)

    def shoot(self, name: str) -> None:
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def rowText(self, sn: str) -> str:
        rows = self.driver.find_elements(By.CSS_SELECTOR, f'#board-rows tr[data-sn="{sn}"]')
        return rows[0].text if rows else ""


class _CorePath:
    """What must work on every store: login, live board, live punch, open door, logs + CSV."""

    server: ConsoleServer
    driver: WebDriver

    @inlineCallbacks
    def test_liveBoardPunchAndOpenDoor(self) -> Generator[Deferred[Any], Any, None]:
        case: _ConsoleCase = self  # type: ignore[assignment]
        driver = case.driver
        yield case.login("operator")
        # a terminal connecting appears on the board without a reload
        marker = yield inThread(driver.execute_script, "return window.performance.timeOrigin")
        connection = case.terminal("LIVE000001", users=3, doors=4)
        yield connection.whenRegistered()
        text = yield inThread(
            waitFor, lambda: "connected" in case.rowText("LIVE000001"), "the row, live", 10
        )
        self_ = yield inThread(driver.execute_script, "return window.performance.timeOrigin")
        case.assertEqual(marker, self_, "the board was reloaded")
        case.assertTrue(text)

        # a punch shows in the live events within two seconds
        yield inThread(driver.get, case.url("/admin/events"))
        yield inThread(
            waitFor,
            lambda: driver.find_element(By.ID, "events-state").text == "live",
            "the event stream",
        )
        connection.punch(2)
        yield inThread(
            waitFor,
            lambda: driver.find_elements(
                By.CSS_SELECTOR, '#event-rows tr[data-type="log.created"]'
            ),
            "the punch in the live feed",
            2.0,
        )

        # open door 2: a confirmation naming the door, then the terminal gets opendoor doornum 2
        yield inThread(driver.get, case.url("/admin/terminals/LIVE000001/"))

        def askDoor() -> str:
            Select(driver.find_element(By.ID, "doornum")).select_by_value("2")
            driver.find_element(By.ID, "opendoor-button").click()
            return str(waitFor(lambda: driver.find_element(By.ID, "confirm-title").text, "confirm"))

        title = yield inThread(askDoor)
        case.assertIn("Open door 2", title)
        case.assertEqual(connection.terminal.doorOpens, [], "opened before confirmation")
        yield inThread(lambda: driver.find_element(By.ID, "confirm-button").click())
        yield inThread(
            waitFor, lambda: connection.terminal.doorOpens, "the opendoor at the terminal", 10
        )
        case.assertEqual([doors for _, doors in connection.terminal.doorOpens], [[2]])
        audit = yield inThread(case.server.api, "GET", "/audit/?limit=5")
        submits = [e for e in audit["items"] if e["action"] == "command.submit"]
        case.assertEqual(submits[0]["actor"], "console:operator")
        case.assertEqual(submits[0]["detail"]["params"], {"doornum": 2})

        # logs search, and its CSV (the API's export) with the same filter
        def searchLogs() -> str:
            driver.get(case.url("/admin/logs"))
            driver.find_element(By.ID, "sn").send_keys("LIVE000001")
            driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
            # the rows of the unfiltered page are there before the click's page replaces them
            waitForPage(driver, "sn=LIVE000001")
            waitFor(lambda: driver.find_elements(By.CSS_SELECTOR, "#logs tbody tr"), "rows")
            return str(
                waitFor(
                    lambda: driver.find_element(By.ID, "csv-link").get_attribute("href"),
                    "the CSV link",
                )
            )

        href = yield inThread(searchLogs)
        status, headers, body = yield inThread(
            case.server.get, href.replace(case.server.base, ""), sessionCookie(driver)
        )
        case.assertEqual(status, 200)
        case.assertIn("text/csv", headers.get("Content-Type", ""))
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        case.assertGreaterEqual(len(rows), 1)
        case.assertEqual({r["sn"] for r in rows}, {"LIVE000001"})
        case.assertIn("2", {r["enrollid"] for r in rows})


class SQLiteConsoleTests(_CorePath, _ConsoleCase):
    """Every console test, on SQLite."""

    serverArgs = ("--require-whitelist",)

    def setUp(self) -> Deferred[Any]:
        # terminals other than the pending ones are approved beforehand (through the API)
        return inThread(self._approve)

    def _approve(self) -> None:
        for sn in ("LIVE000001", "XSS0000001", "NARROW0001"):
            try:
                self.server.api("POST", "/terminals/", {"sn": sn, "approved": True})
            except Exception:
                pass  # already there

    @inlineCallbacks
    def test_wrongPasswordRefused(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver

        def wrong() -> str:
            login(driver, self.server, "operator", "not the password")
            return str(waitFor(lambda: driver.find_element(By.ID, "login-error").text, "error"))

        message = yield inThread(wrong)
        self.assertIn("Wrong name or password", message)
        self.assertIsNone((yield inThread(driver.get_cookie, "tm20_console")))
        yield self.login("admin")
        yield inThread(self.shoot, "login-done")

    @inlineCallbacks
    def test_approvePendingTerminal(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal("PEND000001")
        yield self.login("operator")
        yield inThread(
            waitFor, lambda: "pending" in self.rowText("PEND000001"), "pending on the board"
        )
        self.assertFalse(connection.registered)

        def approve() -> None:
            driver.get(self.url("/admin/terminals/PEND000001/"))
            driver.find_element(By.ID, "approve-reason").send_keys("new site, checked")
            driver.find_element(By.ID, "approve-button").click()
            waitFor(lambda: "Approved" in driver.page_source, "the note")

        yield inThread(approve)
        # the terminal's next reg is accepted
        yield connection.whenRegistered()
        self.assertTrue(connection.registered)
        audit = yield inThread(self.server.api, "GET", "/audit/?limit=5")
        entry = next(e for e in audit["items"] if e["target"] == "PEND000001")
        self.assertEqual(entry["actor"], "console:operator")
        self.assertEqual(entry["detail"], {"approved": True, "reason": "new site, checked"})

    @inlineCallbacks
    def test_pushThenRemoveUser(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal("LIVE000001")
        yield connection.whenRegistered()
        yield self.login("operator")

        def push() -> None:
            driver.get(self.url("/admin/terminals/LIVE000001/"))
            driver.find_element(By.ID, "push-enrollid").send_keys("41")
            driver.find_element(By.ID, "push-name").send_keys("leaver")
            driver.find_element(By.ID, "push-card").send_keys("12345")
            driver.find_element(By.ID, "push-user-button").click()
            waitFor(lambda: driver.find_elements(By.ID, "command-done"), "the command")

        yield inThread(push)
        yield inThread(waitFor, lambda: 41 in connection.terminal.users, "the user pushed")
        pushed = connection.terminal.users[41]
        self.assertEqual((pushed.name, pushed.credentials[11]), ("leaver", 12345))

        def remove() -> str:
            def listed() -> bool:
                driver.get(self.url("/admin/terminals/LIVE000001/"))
                return bool(driver.find_elements(By.CSS_SELECTOR, '[aria-label="Remove user 41"]'))

            waitFor(listed, "the user on the page")
            driver.find_element(By.CSS_SELECTOR, '[aria-label="Remove user 41"]').click()
            title = waitFor(lambda: driver.find_element(By.ID, "confirm-title").text, "confirm")
            driver.find_element(By.ID, "confirm-button").click()
            waitFor(lambda: driver.find_elements(By.ID, "command-done"), "the command")
            return str(title)

        title = yield inThread(remove)
        self.assertIn("Remove user 41", title)
        yield inThread(
            waitFor, lambda: 41 not in connection.terminal.users, "deleteuser at the terminal"
        )
        audit = yield inThread(self.server.api, "GET", "/audit/?limit=5")
        entry = next(e for e in audit["items"] if e["action"] == "user.delete")
        self.assertEqual((entry["actor"], entry["target"]), ("console:operator", "LIVE000001/41"))

    @inlineCallbacks
    def test_adminTokensWebhooksAccounts(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        hook = yield inThread(
            self.server.api, "POST", "/webhooks/", {"url": "http://localhost:9/nobody-listens"}
        )
        connection = self.terminal("LIVE000001")  # events for the webhook to fail on
        yield connection.whenRegistered()
        yield self.login("admin")

        def createToken() -> str:
            driver.get(self.url("/admin/tokens"))
            driver.find_element(By.ID, "token-name").send_keys("ci-reader")
            driver.find_element(By.NAME, "scope-write").click()  # read only
            driver.find_element(By.ID, "create-token").click()
            return str(
                waitFor(
                    lambda: driver.find_element(By.ID, "secret").get_attribute("value"), "secret"
                )
            )

        secret = yield inThread(createToken)

        def call(method: str) -> int:
            from urllib.error import HTTPError
            from urllib.request import Request, urlopen

            request = Request(
                self.url("/api/terminals/"),
                method=method,
                data=b"{}" if method == "POST" else None,
                headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            )
            try:
                with urlopen(request, timeout=10) as response:
                    return int(response.status)
            except HTTPError as e:
                return e.code

        self.assertEqual((yield inThread(call, "GET")), 200)
        self.assertEqual((yield inThread(call, "POST")), 403)

        def revoke() -> bool:
            driver.get(self.url("/admin/tokens"))
            shownAgain = secret in driver.page_source
            driver.find_element(By.CSS_SELECTOR, '[aria-label="Revoke ci-reader"]').click()
            waitFor(lambda: "ci-reader" not in driver.find_element(By.ID, "tokens").text, "gone")
            return shownAgain

        self.assertFalse((yield inThread(revoke)), "the secret was shown twice")
        self.assertEqual((yield inThread(call, "GET")), 401)

        # the webhook's failures are shown; a replay goes through the service and is audited
        def replay() -> str:
            def failing() -> bool:
                driver.get(self.url("/admin/webhooks"))
                return "Connection refused" in driver.find_element(By.ID, "webhooks").text

            waitFor(failing, "the failing webhook", 15)
            field = driver.find_element(By.ID, f"from-{hook['id']}")
            field.clear()
            field.send_keys("1")
            field.submit()
            return str(waitFor(lambda: driver.find_element(By.CLASS_NAME, "note").text, "note"))

        self.assertIn("Replay started", (yield inThread(replay)))

        # a new account from the console, then a viewer is refused the admin pages
        def account() -> tuple[str, int]:
            driver.get(self.url("/admin/accounts"))
            driver.find_element(By.ID, "new-name").send_keys("newbie")
            driver.find_element(By.ID, "new-password").send_keys("newbie password 1")
            driver.find_element(By.ID, "new-password").submit()
            waitFor(lambda: "newbie" in driver.find_element(By.ID, "accounts").text, "listed")
            login(driver, self.server, "newbie", "newbie password 1")
            waitFor(lambda: driver.current_url.endswith("/admin/"), "newbie's board")
            status, _, _ = self.server.get("/admin/tokens", sessionCookie(driver))
            return driver.find_element(By.CLASS_NAME, "who").text, status

        who, status = yield inThread(account)
        self.assertEqual(who, "newbie (viewer)")
        self.assertEqual(status, 403)
        audit = yield inThread(self.server.api, "GET", "/audit/?limit=20")
        actions = {(e["actor"], e["action"]) for e in audit["items"]}
        for action in (
            "token.create",
            "token.revoke",
            "webhook.replay",
            "account.create",
            "console.login",
        ):
            self.assertIn(("console:admin", action), actions)

    @inlineCallbacks
    def test_viewerCannotAct(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal("LIVE000001")
        yield connection.whenRegistered()
        yield self.login("viewer")

        def look() -> tuple[int, str]:
            driver.get(self.url("/admin/terminals/LIVE000001/"))
            buttons = driver.find_elements(By.ID, "opendoor-button")
            assert buttons == [], "a viewer sees the open door button"
            return self.server.post(
                "/admin/terminals/LIVE000001/command",
                {"command": "opendoor", "doornum": "1", "confirm": "yes", "csrf": pageCSRF(driver)},
                sessionCookie(driver),
                self.server.base,
            )

        status, body = yield inThread(look)
        self.assertEqual(status, 403)
        self.assertIn("operator role", body)
        self.assertEqual(connection.terminal.doorOpens, [])

    @inlineCallbacks
    def test_csrfAndOriginRefused(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal("LIVE000001")
        yield connection.whenRegistered()
        yield self.login("operator")

        def attempts() -> list[int]:
            driver.get(self.url("/admin/terminals/LIVE000001/"))
            cookie, token = sessionCookie(driver), pageCSRF(driver)
            fields = {"command": "opendoor", "doornum": "1", "confirm": "yes"}
            path = "/admin/terminals/LIVE000001/command"
            return [
                # no CSRF token
                self.server.post(path, fields, cookie, self.server.base)[0],
                # a wrong one
                self.server.post(path, {**fields, "csrf": "x" * 43}, cookie, self.server.base)[0],
                # the right token, from another site
                self.server.post(path, {**fields, "csrf": token}, cookie, "http://evil.example")[0],
                # no Origin (nor Referer) at all
                self.server.post(path, {**fields, "csrf": token}, cookie, None)[0],
                # a cross-site login attempt
                self.server.post(
                    "/admin/login",
                    {"username": "operator", "password": "x"},
                    None,
                    "http://evil.example",
                )[0],
            ]

        statuses = yield inThread(attempts)
        self.assertEqual(statuses, [403, 403, 403, 403, 403])
        self.assertEqual(connection.terminal.doorOpens, [])

    @inlineCallbacks
    def test_untrustedTextEscaped(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal(
            "XSS0000001", modelname=XSS, firmware='"><img src=x onerror=alert(2)>'
        )
        yield connection.whenRegistered()
        connection.enrollUser(7, name="<b onmouseover=alert(3)>bob</b>", record="ab(10)cd")
        yield self.login("operator")

        def rename() -> None:
            driver.get(self.url("/admin/terminals/XSS0000001/"))
            field = driver.find_element(By.ID, "name")
            field.clear()
            field.send_keys(XSS)
            field.submit()
            waitFor(lambda: "Saved." in driver.page_source, "saved")

        yield inThread(rename)

        def userShown() -> bool:
            driver.refresh()
            return "bob" in driver.find_element(By.TAG_NAME, "main").text

        yield inThread(waitFor, userShown, "the user from the terminal")

        def check() -> None:
            driver.get(self.url("/admin/terminals/XSS0000001/"))
            assert driver.find_element(By.TAG_NAME, "h1").text.startswith(XSS)
            assert (
                "<b onmouseover=alert(3)>bob</b>" in driver.find_element(By.TAG_NAME, "main").text
            )
            driver.get(self.url("/admin/"))
            waitFor(lambda: XSS in self.rowText("XSS0000001"), "the escaped name, live")
            try:
                driver.switch_to.alert.dismiss()
            except NoAlertPresentException:
                return
            raise AssertionError("a script from a device ran")

        yield inThread(check)

    @inlineCallbacks
    def test_narrowScreenAccessibilityAndScreenshots(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal("NARROW0001", users=4, logs=6)
        self.terminal("NARROWPEND")  # not approved: pending
        yield connection.whenRegistered()
        yield connection.whenAllLogsAcknowledged()
        connection.punch(1)
        yield self.login("admin")

        def pullUsers() -> int:
            driver.get(self.url("/admin/terminals/NARROW0001/"))
            driver.find_element(By.ID, "pull-users-button").click()
            waitFor(lambda: "Users pulled" in driver.page_source, "the pull")
            waitForPage(driver, "/admin/terminals/NARROW0001")
            return len(driver.find_elements(By.CSS_SELECTOR, "#users tbody tr"))

        self.assertEqual((yield inThread(pullUsers)), 4)
        pages = {
            "board": "/admin/",
            "terminal": "/admin/terminals/NARROW0001/",
            "logs": "/admin/logs",
            "events": "/admin/events",
            "audit": "/admin/audit",
            "tokens": "/admin/tokens",
            "webhooks": "/admin/webhooks",
            "accounts": "/admin/accounts",
        }

        def visit() -> dict[str, Any]:
            found: dict[str, Any] = {}
            for width, height, suffix in ((1280, 1000, "desktop"), (360, 780, "phone")):
                driver.set_window_size(width, height)
                for name, path in pages.items():
                    driver.get(self.url(path))
                    waitFor(lambda: driver.find_element(By.TAG_NAME, "h1"), "the page")
                    if name == "board":
                        waitFor(lambda: self.rowText("NARROW0001"), "the row")
                    overflow = driver.execute_script(
                        "return document.documentElement.scrollWidth"
                        " - document.documentElement.clientWidth"
                    )
                    found[f"{name}-{suffix}-overflow"] = overflow
                    if suffix == "desktop":
                        found[f"{name}-axe"] = [v["id"] for v in axeViolations(driver)]
                    if suffix == "desktop" or name in ("board", "terminal", "logs", "events"):
                        self.shoot(f"{name}-{suffix}")
            driver.set_window_size(1280, 900)
            driver.delete_all_cookies()
            driver.get(self.url("/admin/login"))
            found["login-axe"] = [v["id"] for v in axeViolations(driver)]
            self.shoot("login-desktop")
            return found

        found = yield inThread(visit)
        for key, value in found.items():
            if key.endswith("-overflow"):
                if key.startswith("board-phone"):
                    self.assertLessEqual(value, 0, f"{key}: the board scrolls sideways at 360 px")
                else:
                    self.assertLessEqual(value, 0, key)
            else:
                self.assertEqual(value, [], f"{key}: serious or critical accessibility problems")
        for name in ("board-phone", "terminal-desktop", "logs-desktop"):
            self.assertTrue((self.shots / f"{name}.png").stat().st_size > 1000)


class SessionTests(_ConsoleCase):
    """A server whose console sessions idle out after 2 s."""

    serverArgs = ("--console-idle", "2s")

    @inlineCallbacks
    def test_idleExpiryAndLogout(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        yield self.login("viewer")

        def idle() -> str:
            import time

            time.sleep(2.5)
            driver.get(self.url("/admin/logs"))
            return str(driver.current_url)

        url = yield inThread(idle)
        self.assertIn("/admin/login", url)
        self.assertIn("next=%2Fadmin%2Flogs", url)

        yield self.login("viewer")

        def logout() -> tuple[str, int]:
            cookie = sessionCookie(driver)
            driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
            waitForPage(driver, "/admin/login")
            return cookie, self.server.get("/admin/terminals.json", cookie)[0]

        _, status = yield inThread(logout)
        self.assertEqual(status, 401)


class LoginRateLimitTests(_ConsoleCase):
    """Failed logins are rate-limited per source (its own server: the source stays blocked)."""

    @inlineCallbacks
    def test_failedLoginsRateLimited(self) -> Generator[Deferred[Any], Any, None]:
        def hammer() -> list[int]:
            # the budget is 10 failures, then one more every 6 s: on a loaded machine a few
            # may be earned back while guessing, so guess until refused (at most 30 times)
            statuses: list[int] = []
            while 429 not in statuses and len(statuses) < 30:
                statuses.append(
                    self.server.post(
                        "/admin/login",
                        {"username": "admin", "password": f"guess-{len(statuses)}"},
                        None,
                        self.server.base,
                    )[0]
                )
            return statuses

        statuses = yield inThread(hammer)
        self.assertEqual(statuses[-1], 429, statuses)
        self.assertEqual(set(statuses[:-1]), {401})
        self.assertGreaterEqual(len(statuses) - 1, 10)
        # blocked even with the right password until the budget refills
        status, body = yield inThread(
            self.server.post,
            "/admin/login",
            {"username": "admin", "password": "console test password"},
            None,
            self.server.base,
        )
        self.assertEqual(status, 429)
        self.assertIn("Too many failed logins", body)


class PostgresConsoleTests(_CorePath, _ConsoleCase):
    """The core path on PostgreSQL."""

    _url: ClassVar[str]

    @classmethod
    def database(cls) -> str | None:
        cls._url = pgharness.createDatabase("tm20_console")
        return cls._url

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        pgharness.dropDatabase(cls._url)
