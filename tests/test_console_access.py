"""
The console's access control pages over real HTTP (an in-process server on loopback): rules
created, edited and deleted from forms, refusals shown next to their field with the form kept,
viewers refused, CSRF refused, every change audited as C{console:NAME}; holidays, visitor codes
(the text shown once), group settings, decisions and the logs' decision filter; and the
decision metrics in C{/metrics} (read with C{prometheus_client}'s parser).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests import test_console_http as consolehttp
from tests.importgraph import importGraph
from tests.test_api_support import READER, Response
from tests.test_import_cycles import ROOT
from tests.test_metrics import families, value
from tm20.access.model import DAYS
from tm20.simulator.device import SimulatedTerminal


class _AccessCase(consolehttp._ConsoleHTTPCase):
    timeout = 120

    @inlineCallbacks
    def site(self) -> Any:
        """DOOR1, DOOR2 in group hq; persons 1 (Ann) and 2 (Bob) in hq."""
        yield self.start()
        for sn in ("DOOR1", "DOOR2"):
            r = yield self.call("POST", "/api/terminals/", {"sn": sn})
            self.assertEqual(r.status, 201, r.text)
        r = yield self.call("POST", "/api/groups/", {"name": "hq", "terminals": ["DOOR1", "DOOR2"]})
        self.assertEqual(r.status, 201, r.text)
        for enrollid, name in ((1, "Ann"), (2, "Bob")):
            r = yield self.call(
                "POST", "/api/persons/", {"enrollid": enrollid, "name": name, "groups": ["hq"]}
            )
            self.assertEqual(r.status, 201, r.text)

    def post(self, path: str, fields: list[tuple[str, str]], cookie: str) -> Any:
        """A form POST with repeated fields (multiple selects, checkboxes)."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.origin,
            "Cookie": f"tm20_console={cookie}",
        }
        return self.request("POST", path, headers, urlencode(fields).encode())

    @inlineCallbacks
    def token(self, path: str, cookie: str) -> Any:
        page = yield self.page(path, cookie)
        self.assertEqual(page.status, 200, page.text)
        return self.csrf(page)

    @inlineCallbacks
    def audit(self, n: int) -> Any:
        r = yield self.call("GET", f"/api/audit/?limit={n}")
        return [(e["actor"], e["action"], e["target"], e["detail"]) for e in r.json["items"]]


def _errorOf(r: Response, field: str) -> str:
    match = re.search(rf'id="error-{field}"[^>]*>([^<]*)<', r.text)
    assert match is not None, f"no error shown at {field}"
    return match.group(1)


class ConsoleRuleTests(_AccessCase):
    @inlineCallbacks
    def test_createEditDeleteARule(self) -> Any:
        yield self.site()
        cookie = yield self.login("olga")
        csrf = yield self.token("/admin/access/rules/new", cookie)
        r = yield self.post(
            "/admin/access/rules/new",
            [
                ("csrf", csrf),
                ("description", "day staff"),
                ("personGroups", "hq"),
                ("persons", "2"),
                ("terminals", "DOOR1"),
                ("rows", "2"),
                ("w0-days", "mon"),
                ("w0-days", "tue"),
                ("w0-start", "08:00"),
                ("w0-end", "18:00"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 303, r.text)
        self.assertTrue(r.headers["location"].startswith("/admin/access/rules?note=created"))
        rules = (yield self.call("GET", "/api/access/rules/")).json["items"]
        self.assertEqual(len(rules), 1)
        rule = rules[0]
        self.assertEqual(
            (rule["description"], rule["persons"], rule["personGroups"], rule["terminals"]),
            ("day staff", [2], ["hq"], ["DOOR1"]),
        )
        self.assertEqual(
            rule["windows"], [{"days": ["mon", "tue"], "start": "08:00", "end": "18:00"}]
        )
        self.assertFalse(rule["holidays"])
        listed = yield self.page("/admin/access/rules", cookie)
        self.assertIn("day staff", listed.text)
        self.assertIn("Bob (2)", listed.text)
        self.assertIn("mon, tue 08:00–18:00", listed.text)
        # the edit form holds the rule; saved whole with the holidays flag and another door
        edit = yield self.page(f"/admin/access/rules/{rule['id']}", cookie)
        self.assertIn('value="08:00"', edit.text)
        self.assertRegex(edit.text, r'<option value="hq" selected>')
        r = yield self.post(
            f"/admin/access/rules/{rule['id']}",
            [
                ("csrf", csrf),
                ("description", "all staff"),
                ("personGroups", "hq"),
                ("terminals", "DOOR1"),
                ("terminals", "DOOR2"),
                ("holidays", "on"),
                ("rows", "1"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 303, r.text)
        saved = (yield self.call("GET", f"/api/access/rules/{rule['id']}")).json
        self.assertEqual(
            (saved["description"], saved["persons"], saved["terminals"], saved["windows"]),
            ("all staff", [], ["DOOR1", "DOOR2"], []),
        )
        self.assertTrue(saved["holidays"])
        # delete: a confirmation first, then gone
        r = yield self.post(f"/admin/access/rules/{rule['id']}/delete", [("csrf", csrf)], cookie)
        self.assertEqual(r.status, 200)
        self.assertIn(f"Delete rule {rule['id']}", r.text)
        self.assertEqual(len((yield self.call("GET", "/api/access/rules/")).json["items"]), 1)
        r = yield self.post(
            f"/admin/access/rules/{rule['id']}/delete",
            [("csrf", csrf), ("confirm", "yes")],
            cookie,
        )
        self.assertEqual(
            (r.status, r.headers["location"]), (303, "/admin/access/rules?note=deleted")
        )
        self.assertEqual((yield self.call("GET", "/api/access/rules/")).json["items"], [])
        entries = yield self.audit(3)
        ruleId = str(rule["id"])
        self.assertEqual(
            [(a, action, target) for a, action, target, _ in entries],
            [
                ("console:olga", "access.rule.delete", ruleId),
                ("console:olga", "access.rule.replace", ruleId),
                ("console:olga", "access.rule.create", ruleId),
            ],
        )
        self.assertEqual(entries[2][3]["personGroups"], ["hq"])
        r = yield self.page("/admin/access/rules/999", cookie)
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_refusalsShownAtTheirFieldFormKept(self) -> Any:
        yield self.site()
        cookie = yield self.login("olga")
        csrf = yield self.token("/admin/access/rules/new", cookie)
        base = [("csrf", csrf), ("description", "kept text"), ("rows", "3")]
        cases = [
            # nobody: the service's rule, shown at the persons
            ([("terminals", "DOOR1")], "persons", "at least one person"),
            ([("persons", "1")], "terminals", "at least one terminal"),
            ([("persons", "77"), ("terminals", "DOOR1")], "persons", "no person 77"),
            ([("persons", "1"), ("terminalGroups", "nope")], "terminalGroups", "no group"),
            # the second row is the one at fault (the first left empty)
            (
                [
                    ("persons", "1"),
                    ("terminals", "DOOR1"),
                    ("w1-days", "mon"),
                    ("w1-start", "25:00"),
                    ("w1-end", "26:00"),
                ],
                "w1",
                "HH:MM",
            ),
            (
                [
                    ("persons", "1"),
                    ("terminals", "DOOR1"),
                    ("w2-start", "08:00"),
                    ("w2-end", "09:00"),
                ],
                "w2",
                "at least one day",
            ),
            (
                [
                    ("persons", "1"),
                    ("terminals", "DOOR1"),
                    ("w0-days", "sun"),
                    ("w0-start", "08:00"),
                    ("w0-end", "08:00"),
                ],
                "w0",
                "empty window",
            ),
            ([("persons", "x"), ("terminals", "DOOR1")], "persons", "enroll ids"),
        ]
        for fields, field, said in cases:
            r = yield self.post("/admin/access/rules/new", base + fields, cookie)
            self.assertEqual(r.status, 400, (fields, r.text[:300]))
            self.assertIn(said, _errorOf(r, field), fields)
            self.assertIn('value="kept text"', r.text)
        # what was chosen is still chosen
        self.assertIn('<option value="DOOR1" selected>', r.text)
        self.assertEqual((yield self.call("GET", "/api/access/rules/")).json["items"], [])

    @inlineCallbacks
    def test_viewerReadsOnlyAndCSRFIsChecked(self) -> Any:
        yield self.site()
        r = yield self.call("POST", "/api/access/rules/", {"persons": [1], "terminals": ["DOOR1"]})
        ruleId = r.json["id"]
        viewer = yield self.login("vic")
        listed = yield self.page("/admin/access/rules", viewer)
        self.assertEqual(listed.status, 200)
        self.assertIn("Ann (1)", listed.text)
        self.assertNotIn("New rule", listed.text)
        self.assertNotIn("Delete…", listed.text)
        for path in ("/admin/access/codes", "/admin/access/holidays", "/admin/access/groups"):
            page = yield self.page(path, viewer)
            self.assertEqual(page.status, 200, path)
            self.assertNotIn('<button type="submit"', page.text.split("</header>")[1], path)
        csrf = self.csrf(listed)  # the logout form's: the viewer's own token
        r = yield self.page("/admin/access/rules/new", viewer)
        self.assertEqual(r.status, 403)
        for path, fields in (
            ("/admin/access/rules/new", [("persons", "1"), ("terminals", "DOOR1")]),
            (f"/admin/access/rules/{ruleId}/delete", [("confirm", "yes")]),
            (
                "/admin/access/holidays",
                [("action", "create"), ("name", "x"), ("start", "2026-12-25")],
            ),
            ("/admin/access/codes", [("visitorName", "Zoe"), ("validUntil", "2030-01-01 10:00")]),
            ("/admin/access/groups", [("group", "hq"), ("unknownEnrollid", "allow")]),
            ("/admin/terminals/DOOR1/push-access", []),
        ):
            r = yield self.post(path, [("csrf", csrf), *fields], viewer)
            self.assertEqual(r.status, 403, path)
        # an operator without the form's token, or from another site: refused too
        operator = yield self.login("olga")
        r = yield self.post(f"/admin/access/rules/{ruleId}/delete", [("confirm", "yes")], operator)
        self.assertEqual(r.status, 403)
        r = yield self.form(
            f"/admin/access/rules/{ruleId}/delete",
            {"confirm": "yes", "csrf": (yield self.token("/admin/access/rules", operator))},
            operator,
            origin="http://evil.example",
        )
        self.assertEqual(r.status, 403)
        self.assertEqual(len((yield self.call("GET", "/api/access/rules/")).json["items"]), 1)
        self.assertEqual((yield self.call("GET", "/api/access/holidays/")).json["items"], [])


class ConsoleAccessPagesTests(_AccessCase):
    @inlineCallbacks
    def test_holidaysCodesAndGroupSettings(self) -> Any:
        yield self.site()
        cookie = yield self.login("olga")
        csrf = yield self.token("/admin/access/holidays", cookie)
        r = yield self.post(
            "/admin/access/holidays",
            [
                ("csrf", csrf),
                ("action", "create"),
                ("name", "Xmas"),
                ("start", "2026-12-25"),
                ("end", "2026-12-24"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 400)
        self.assertIn("before start", _errorOf(r, "end"))
        self.assertIn('value="Xmas"', r.text)
        r = yield self.post(
            "/admin/access/holidays",
            [("csrf", csrf), ("action", "create"), ("name", "Xmas"), ("start", "2026-12-32")],
            cookie,
        )
        self.assertIn("no such day", _errorOf(r, "start"))
        r = yield self.post(
            "/admin/access/holidays",
            [
                ("csrf", csrf),
                ("action", "create"),
                ("name", "Xmas"),
                ("start", "2026-12-25"),
                ("terminalGroups", "hq"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 303, r.text)
        holidays = (yield self.call("GET", "/api/access/holidays/")).json["items"]
        self.assertEqual(
            [(h["name"], h["start"], h["end"], h["terminalGroups"]) for h in holidays],
            [("Xmas", "2026-12-25", "2026-12-25", ["hq"])],
        )
        page = yield self.page("/admin/access/holidays", cookie)
        self.assertIn("Xmas", page.text)
        r = yield self.post(
            "/admin/access/holidays",
            [("csrf", csrf), ("action", "delete"), ("id", str(holidays[0]["id"]))],
            cookie,
        )
        self.assertEqual(r.status, 303)
        self.assertEqual((yield self.call("GET", "/api/access/holidays/")).json["items"], [])

        # a visitor code: the text once, on the creation's answer, never again
        r = yield self.post(
            "/admin/access/codes",
            [
                ("csrf", csrf),
                ("visitorName", "Zoe"),
                ("validUntil", "2020-01-01 10:00"),
                ("zone", "Europe/Paris"),
                ("terminals", "DOOR1"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 400)
        self.assertIn("after validFrom", _errorOf(r, "validUntil"))
        r = yield self.post(
            "/admin/access/codes",
            [
                ("csrf", csrf),
                ("visitorName", "Zoe"),
                ("validUntil", "tomorrow"),
                ("terminals", "DOOR1"),
            ],
            cookie,
        )
        self.assertIn("YYYY-MM-DD HH:MM", _errorOf(r, "validUntil"))
        r = yield self.post(
            "/admin/access/codes",
            [
                ("csrf", csrf),
                ("visitorName", "Zoe"),
                ("enrollid", "1"),
                ("validUntil", "2099-01-01 10:00"),
                ("terminals", "DOOR1"),
            ],
            cookie,
        )
        self.assertIn("either", _errorOf(r, "visitorName"))
        r = yield self.post(
            "/admin/access/codes",
            [
                ("csrf", csrf),
                ("visitorName", "Zoe"),
                ("validUntil", "2099-01-01 10:00"),
                ("zone", "Europe/Paris"),
                ("terminalGroups", "hq"),
                ("singleUse", "on"),
                ("code", "VISIT-ZOE-1"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 200, r.text)
        self.assertIn('value="VISIT-ZOE-1"', r.text)
        codes = (yield self.call("GET", "/api/access/qrcodes/")).json["items"]
        self.assertEqual(
            [
                (c["visitorName"], c["validUntil"], c["terminalGroups"], c["singleUse"])
                for c in codes
            ],
            [("Zoe", "2099-01-01T09:00:00+00:00", ["hq"], True)],
        )
        page = yield self.page("/admin/access/codes", cookie)
        self.assertNotIn("VISIT-ZOE-1", page.text)
        self.assertIn("visitor Zoe", page.text)
        self.assertIn(">valid<", page.text)
        r = yield self.post(
            f"/admin/access/codes/{codes[0]['id']}/revoke", [("csrf", csrf)], cookie
        )
        self.assertEqual(r.status, 303)
        page = yield self.page("/admin/access/codes", cookie)
        self.assertIn(">revoked<", page.text)

        # what the doors of hq do with unknown credentials
        r = yield self.post(
            "/admin/access/groups",
            [
                ("csrf", csrf),
                ("group", "hq"),
                ("unknownEnrollid", "open-sesame"),
                ("unknownCode", "deny"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 400)
        self.assertIn("unknownEnrollid", r.text)
        r = yield self.post(
            "/admin/access/groups",
            [
                ("csrf", csrf),
                ("group", "hq"),
                ("unknownEnrollid", "allow"),
                ("unknownCode", "deny"),
            ],
            cookie,
        )
        self.assertEqual(r.status, 303)
        settings = (yield self.call("GET", "/api/access/groups/hq")).json
        self.assertEqual((settings["unknownEnrollid"], settings["unknownCode"]), ("allow", "deny"))
        r = yield self.post(
            "/admin/access/groups",
            [("csrf", csrf), ("group", "nope"), ("unknownEnrollid", "allow")],
            cookie,
        )
        self.assertEqual(r.status, 404)
        entries = yield self.audit(6)
        self.assertEqual(
            [action for _, action, _, _ in entries],
            [
                "access.group.update",
                "access.qrcode.revoke",
                "access.qrcode.create",
                "access.holiday.delete",
                "access.holiday.create",
                "console.login",
            ],
        )
        self.assertNotIn("code", entries[2][3])  # the code's text is never audited
        self.assertTrue(all(actor == "console:olga" for actor, _, _, _ in entries))

    @inlineCallbacks
    def test_decisionsLogsFilterAndMetrics(self) -> Any:
        """
        Punches and a code decided at a door in server-approval mode: listed on the decisions
        page (filtered by terminal and decision), on the terminal's page, in the logs by
        decision and reason, and counted in /metrics.
        """
        yield self.site()
        r = yield self.call("POST", "/api/access/rules/", {"persons": [1], "terminals": ["DOOR1"]})
        self.assertEqual(r.status, 201, r.text)
        door = yield self.connect(SimulatedTerminal("DOOR1", serverApproval=True))
        answers = door.terminal.accessAnswers
        for enrollid in (1, 99):
            before = len(answers)
            door.punch(enrollid)
            yield self.until(lambda b=before: len(answers) > b, f"the answer to {enrollid}")
        self.assertEqual([a.opened for a in answers], [True, False])
        reply = yield door.scanQrCode("never-issued")
        self.assertEqual(reply["access"], 0)
        cookie = yield self.login("vic")
        page = yield self.page("/admin/access/decisions", cookie)
        self.assertEqual(page.status, 200)
        self.assertEqual(page.text.count('data-decision="granted"'), 1)
        self.assertEqual(page.text.count('data-decision="denied"'), 2)
        self.assertIn("Ann (1)", page.text)
        self.assertIn("qr_unknown", page.text)
        page = yield self.page("/admin/access/decisions?decision=denied&sn=DOOR1", cookie)
        self.assertEqual(page.text.count('data-decision="granted"'), 0)
        self.assertEqual(page.text.count('data-decision="denied"'), 2)
        page = yield self.page("/admin/access/decisions?sn=DOOR2", cookie)
        self.assertNotIn("data-decision=", page.text)
        r = yield self.page("/admin/access/decisions?decision=maybe", cookie)
        self.assertEqual(r.status, 400)
        # the logs, by decision and reason
        logs = yield self.page("/admin/logs?access=granted", cookie)
        self.assertEqual(re.findall(r"decision-(\w+)", logs.text), ["granted"])
        logs = yield self.page("/admin/logs?access=denied&reason=unknown", cookie)
        self.assertEqual(re.findall(r"decision-(\w+)", logs.text), ["denied"])
        self.assertIn("unknown</td>", logs.text)
        logs = yield self.page("/admin/logs?access=denied&reason=window", cookie)
        self.assertEqual(re.findall(r"decision-(\w+)", logs.text), [])
        r = yield self.page("/admin/logs?access=maybe", cookie)
        self.assertEqual(r.status, 400)
        r = yield self.page("/admin/logs?reason=because", cookie)
        self.assertEqual(r.status, 400)
        # the terminal's page: its decisions and its offline plan (no push button for a viewer)
        page = yield self.page("/admin/terminals/DOOR1/", cookie)
        self.assertIn('id="device-plan"', page.text)
        self.assertEqual(page.text.count('data-decision="'), 3)
        self.assertNotIn("push-access-button", page.text)
        operator = yield self.login("olga")
        page = yield self.page("/admin/terminals/DOOR1/", operator)
        self.assertIn("push-access-button", page.text)
        r = yield self.form(
            "/admin/terminals/DOOR1/push-access", {"csrf": self.csrf(page)}, operator
        )
        self.assertEqual(
            (r.status, r.headers["location"]), (303, "/admin/terminals/DOOR1/?note=access-pushed")
        )
        entries = yield self.audit(1)
        self.assertEqual(entries[0][:3], ("console:olga", "access.device.push", "DOOR1"))
        self.assertGreaterEqual(entries[0][3]["commands"], 1)
        # /metrics: decisions by decision and reason, the latency of each answer
        r = yield self.call("GET", "/metrics", token=READER)
        fams = families(r.text)
        decisions = "tm20_access_decisions"
        self.assertEqual(
            value(fams, decisions, f"{decisions}_total", decision="granted", reason="rule"), 1
        )
        self.assertEqual(
            value(fams, decisions, f"{decisions}_total", decision="denied", reason="unknown"), 1
        )
        self.assertEqual(
            value(fams, decisions, f"{decisions}_total", decision="denied", reason="qr_unknown"), 1
        )
        latency = "tm20_access_decision_latency_seconds"
        self.assertEqual(value(fams, latency, f"{latency}_count", kind="log"), 2)
        self.assertEqual(value(fams, latency, f"{latency}_count", kind="qrcode"), 1)
        self.assertGreater(value(fams, latency, f"{latency}_sum", kind="log"), 0)
        fallbacks = "tm20_access_fallbacks"
        self.assertEqual(value(fams, fallbacks, f"{fallbacks}_total", decision="denied"), 0)


class ConsoleRuleWindowNowTests(_AccessCase):
    @inlineCallbacks
    def test_aWindowCoveringNowOpensTheDoor(self) -> Any:
        """A rule made in the console with a window around now: the door opens; deleted: shut."""
        yield self.site()
        # Ann's rule keeps DOOR2 under access control once the console's rule is gone
        r = yield self.call("POST", "/api/access/rules/", {"persons": [1], "terminals": ["DOOR2"]})
        self.assertEqual(r.status, 201, r.text)
        door = yield self.connect(SimulatedTerminal("DOOR2", serverApproval=True))
        cookie = yield self.login("olga")
        csrf = yield self.token("/admin/access/rules/new", cookie)
        now = datetime.now()
        start = (now - timedelta(hours=1)).strftime("%H:%M")
        end = (now + timedelta(hours=1)).strftime("%H:%M")
        r = yield self.post(
            "/admin/access/rules/new",
            [
                ("csrf", csrf),
                ("personGroups", "hq"),
                ("terminalGroups", "hq"),
                ("rows", "1"),
                ("w0-days", DAYS[(now - timedelta(hours=1)).weekday()]),
                ("w0-days", DAYS[now.weekday()]),
                ("w0-start", start),
                ("w0-end", end),
            ],
            cookie,
        )
        self.assertEqual(r.status, 303, r.text)
        answers = door.terminal.accessAnswers
        door.punch(2)
        yield self.until(lambda: len(answers) == 1, "the answer")
        self.assertTrue(answers[-1].opened)
        ruleId = (yield self.call("GET", "/api/access/rules/")).json["items"][-1]["id"]
        r = yield self.post(
            f"/admin/access/rules/{ruleId}/delete", [("csrf", csrf), ("confirm", "yes")], cookie
        )
        self.assertEqual(r.status, 303)
        # a second later (the same second's punch would be the same record)
        later = datetime.now() + timedelta(seconds=1)
        door.punch(2, time=later.strftime("%Y-%m-%d %H:%M:%S"))
        yield self.until(lambda: len(answers) == 2, "the second answer")
        self.assertFalse(answers[-1].opened)
        for decision in ("granted", "denied"):
            r = yield self.call("GET", f"/api/terminals/DOOR2/logs/?access={decision}")
            self.assertEqual(
                [(log["enrollid"], log["accessReason"]) for log in r.json["items"]],
                [(2, "rule")],
                r.text,
            )


class AccessPagesImportsTests(SynchronousTestCase):
    def test_noRESTAPIBehindTheAccessPages(self) -> None:
        """The console's access pages use the services, never C{tm20.api} (another door)."""
        graph = importGraph(ROOT, "tm20")
        for module in ("tm20.console._accesspages", "tm20.console._accessviews"):
            self.assertIn(
                "tm20.services.accessadmin" if "pages" in module else "tm20.access.model",
                graph[module],
            )
            self.assertEqual(
                sorted(m for m in graph[module] if m.startswith("tm20.api")), [], module
            )
