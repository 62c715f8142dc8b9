"""
Access control in the console, end to end: a real C{twistd tm20} (SQLite), a simulated terminal
in server-approval mode on this test's reactor, and Debian's Chromium driven by selenium (each
browser step in a thread, as in L{tests.test_console_browser}).

An operator keeps the door under access control (the group's unknown-credential setting),
creates a rule whose window covers now: the door opens; deletes it: the door stays shut; creates
a single-use visitor code: it opens once and is then shown used; the decisions page and the logs'
filter show both decisions.  The access pages pass axe (no serious or critical violation), do
not scroll sideways at 360 px, and are photographed for README (C{make screenshots}).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from twisted.internet.defer import Deferred, inlineCallbacks

from tests import test_console_browser as browser
from tests.consolesupport import axeViolations, waitFor, waitForPage
from tm20.access.model import DAYS

inThread = browser.inThread
DOOR = "ACCESS0001"  # the operator's test: group site, persons 1 and 2
SHOWN = "ACCESS0002"  # the screenshots' door: group lobby, persons 3 and 4


class AccessConsoleTests(browser._ConsoleCase):
    """Access pages on SQLite."""

    def setUp(self) -> Deferred[Any]:
        return inThread(self._site)

    def _site(self) -> None:
        api = self.server.api
        terminals = {t["sn"] for t in api("GET", "/terminals/")["items"]}
        if DOOR in terminals:
            return
        for sn, name, group, persons in (
            (DOOR, "Front door", "site", ((1, "Ann"), (2, "Bob"))),
            (SHOWN, "Lobby", "lobby", ((3, "Cleo"), (4, "Dan"))),
        ):
            api("POST", "/terminals/", {"sn": sn, "name": name})
            api("POST", "/groups/", {"name": group, "terminals": [sn]})
            for enrollid, person in persons:
                api("POST", "/persons/", {"enrollid": enrollid, "name": person, "groups": [group]})

    @inlineCallbacks
    def punch(self, connection: Any, enrollid: int, seconds: int = 0) -> Generator[Any, Any, Any]:
        """A real-time punch (C{seconds} from now: two punches of one second are one record)."""
        answers = connection.terminal.accessAnswers
        before = len(answers)
        when = (datetime.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
        connection.punch(enrollid, time=when)
        yield inThread(waitFor, lambda: len(answers) > before, f"the answer to {enrollid}", 20)
        return answers[-1]

    @inlineCallbacks
    def test_operatorRuleAndVisitorCodeAtTheDoor(self) -> Generator[Deferred[Any], Any, None]:
        driver = self.driver
        connection = self.terminal(DOOR, serverApproval=True)
        yield connection.whenRegistered()
        yield self.login("operator")

        def keepUnderControl() -> str:
            # saving the group's setting (deny, deny) puts its doors under access control
            driver.get(self.url("/admin/access/groups"))
            driver.find_element(By.CSS_SELECTOR, '[aria-label="Save site"]').click()
            return str(waitFor(lambda: driver.find_element(By.CLASS_NAME, "note").text, "saved"))

        self.assertEqual((yield inThread(keepUnderControl)), "Saved.")
        start = datetime.now() - timedelta(hours=1)

        def staffCard() -> Any:
            cards = driver.find_elements(By.CSS_SELECTOR, "#rules .card")
            return next(c for c in cards if "site staff" in c.text)

        def createRule() -> str:
            driver.get(self.url("/admin/access/rules"))
            driver.find_element(By.ID, "new-rule").click()
            waitFor(lambda: driver.find_elements(By.ID, "rule-form"), "the form")
            driver.find_element(By.ID, "description").send_keys("site staff")
            Select(driver.find_element(By.ID, "personGroups")).select_by_value("site")
            Select(driver.find_element(By.ID, "terminals")).select_by_value(DOOR)
            day = DAYS[start.weekday()]
            driver.find_element(By.CSS_SELECTOR, f'input[name="w0-days"][value="{day}"]').click()
            driver.find_element(By.ID, "w0-start").send_keys(start.strftime("%H:%M"))
            end = start + timedelta(hours=2)
            driver.find_element(By.ID, "w0-end").send_keys(end.strftime("%H:%M"))
            driver.find_element(By.ID, "save-rule").click()
            waitFor(lambda: "Rule created" in driver.page_source, "the rule list")
            return str(waitFor(lambda: staffCard().text, "the rule's card"))

        card = yield inThread(createRule)
        self.assertIn("site staff", card)
        self.assertIn("group site", card)
        answer = yield self.punch(connection, 2)
        self.assertTrue(answer.opened, "the rule made in the console opens the door")

        def deleteRule() -> str:
            driver.get(self.url("/admin/access/rules"))
            staffCard().find_element(By.CSS_SELECTOR, "button.danger").click()
            title = waitFor(lambda: driver.find_element(By.ID, "confirm-title").text, "confirm")
            driver.find_element(By.ID, "confirm-button").click()
            waitFor(lambda: "Rule deleted" in driver.page_source, "the deletion")
            return str(title)

        self.assertIn("site staff", (yield inThread(deleteRule)))
        answer = yield self.punch(connection, 2, seconds=1)
        self.assertFalse(answer.opened, "the rule deleted, the door stays shut")

        def createCode() -> str:
            driver.get(self.url("/admin/access/codes"))
            driver.find_element(By.ID, "code-visitor").send_keys("Zoe Visitor")
            until = datetime.now(UTC) + timedelta(hours=1)
            driver.find_element(By.ID, "code-until").send_keys(until.strftime("%Y-%m-%d %H:%M"))
            zone = driver.find_element(By.ID, "code-zone")
            zone.clear()
            zone.send_keys("UTC")
            Select(driver.find_element(By.ID, "code-terminals")).select_by_value(DOOR)
            driver.find_element(By.ID, "code-single").click()
            driver.find_element(By.ID, "create-code").click()
            return str(
                waitFor(
                    lambda: driver.find_element(By.ID, "code-text").get_attribute("value"),
                    "the code's text",
                )
            )

        text = yield inThread(createCode)
        first = yield connection.scanQrCode(text)
        second = yield connection.scanQrCode(text)
        self.assertEqual((first["access"], second["access"]), (1, 0))

        def codeState() -> str:
            driver.get(self.url("/admin/access/codes"))
            rows = driver.find_elements(By.CSS_SELECTOR, "#codes tbody tr")
            return str(next(r.text for r in rows if "Zoe Visitor" in r.text))

        state = yield inThread(codeState)
        self.assertIn("used", state)
        self.assertIn("Zoe Visitor", state)
        self.assertNotIn(text, (yield inThread(lambda: driver.page_source)))

        def decisions() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            driver.get(self.url(f"/admin/access/decisions?sn={DOOR}"))
            for table in ("punch-decisions", "code-decisions"):
                cells = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
                found[table] = [str(c.get_attribute("data-decision")) for c in cells]
            Select(driver.find_element(By.ID, "decision-filter")).select_by_value("denied")
            driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
            waitForPage(driver, "decision=denied")
            cells = driver.find_elements(By.CSS_SELECTOR, "table.decisions tbody tr")
            found["denied"] = [str(c.get_attribute("data-decision")) for c in cells]
            for access in ("granted", "denied"):
                driver.get(self.url("/admin/logs"))
                driver.find_element(By.ID, "sn").send_keys(DOOR)
                Select(driver.find_element(By.ID, "access")).select_by_value(access)
                driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
                waitForPage(driver, f"access={access}")
                cells = driver.find_elements(By.CSS_SELECTOR, "#logs td.access")
                found[f"logs-{access}"] = [str(c.text) for c in cells]
            return found

        found = yield inThread(decisions)
        self.assertEqual(found["punch-decisions"], ["denied", "granted"])
        self.assertEqual(found["code-decisions"], ["denied", "granted"])
        self.assertEqual(found["denied"], ["denied", "denied"])
        self.assertEqual(found["logs-granted"], ["granted rule"])
        self.assertEqual(found["logs-denied"], ["denied rule"])

    @inlineCallbacks
    def test_narrowScreenAccessPagesAndScreenshots(self) -> Generator[Deferred[Any], Any, None]:
        api = self.server.api

        def data() -> str:
            api(
                "POST",
                "/access/rules/",
                {"description": "Night guard", "persons": [4], "terminals": [SHOWN]},
            )
            api(
                "POST",
                "/access/rules/",
                {
                    "description": "Office hours",
                    "personGroups": ["lobby"],
                    "terminals": [SHOWN],
                    "windows": [
                        {
                            "days": ["mon", "tue", "wed", "thu", "fri"],
                            "start": "07:30",
                            "end": "19:00",
                        },
                        {"days": ["sat"], "start": "09:00", "end": "13:00"},
                    ],
                },
            )
            api("POST", "/access/holidays/", {"name": "New Year", "start": "2027-01-01"})
            until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            code = api(
                "POST",
                "/access/qrcodes/",
                {"visitorName": "Sam Supplier", "terminals": [SHOWN], "validUntil": until},
            )
            return str(code["code"])

        text = yield inThread(data)
        connection = self.terminal(SHOWN, serverApproval=True)
        yield connection.whenRegistered()
        yield self.punch(connection, 3)
        yield self.punch(connection, 4, seconds=1)
        yield self.punch(connection, 7, seconds=2)
        reply = yield connection.scanQrCode(text)
        self.assertEqual(reply["access"], 1)
        yield self.login("admin")
        driver = self.driver
        pages = {
            "access-rules": "/admin/access/rules",
            "access-rule-form": "/admin/access/rules/new",
            "access-holidays": "/admin/access/holidays",
            "access-codes": "/admin/access/codes",
            "access-groups": "/admin/access/groups",
            "access-decisions": "/admin/access/decisions",
            "access-terminal": f"/admin/terminals/{SHOWN}/",
            "access-logs": "/admin/logs?access=denied",
        }

        def visit() -> dict[str, Any]:
            found: dict[str, Any] = {}
            for width, height, suffix in ((1280, 1000, "desktop"), (360, 780, "phone")):
                driver.set_window_size(width, height)
                for name, path in pages.items():
                    driver.get(self.url(path))
                    waitFor(lambda: driver.find_element(By.TAG_NAME, "h1"), "the page")
                    found[f"{name}-{suffix}-overflow"] = driver.execute_script(
                        "return document.documentElement.scrollWidth"
                        " - document.documentElement.clientWidth"
                    )
                    if suffix == "desktop":
                        found[f"{name}-axe"] = [v["id"] for v in axeViolations(driver)]
                    if name not in ("access-terminal", "access-logs"):
                        self.shoot(f"{name}-{suffix}")
            driver.set_window_size(1280, 900)
            return found

        found = yield inThread(visit)
        for key, value in found.items():
            if key.endswith("-overflow"):
                self.assertLessEqual(value, 0, f"{key}: the page scrolls sideways")
            else:
                self.assertEqual(value, [], f"{key}: serious or critical accessibility problems")
        for name in ("access-rules-phone", "access-rule-form-desktop", "access-decisions-desktop"):
            self.assertTrue((self.shots / f"{name}.png").stat().st_size > 1000)
