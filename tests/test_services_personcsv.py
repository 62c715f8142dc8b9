"""L{tm20.services.personcsv}: the persons CSV, and its errors by line and column."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tm20.services.personcsv import CsvError, CsvRow, parsePersonsCSV


class ParseTests(SynchronousTestCase):
    def test_rows(self) -> None:
        text = (
            "enrollid , name,admin,enabled,validFrom,validUntil,groups,terminals,card,password\r\n"
            "1,Ann,2,YES,2026-01-01 00:00:00,,hq; b ;hq,T1,77,0012\r\n"
            "\r\n"
            "2,,,,,,,,,\r\n"
        )
        rows, errors = parsePersonsCSV(text)
        self.assertEqual(errors, [])
        self.assertEqual(
            rows,
            [
                CsvRow(
                    2,
                    1,
                    {
                        "name": "Ann",
                        "admin": 2,
                        "enabled": True,
                        "validFrom": "2026-01-01 00:00:00",
                        "groups": ["b", "hq"],
                        "terminals": ["T1"],
                        "credentials": [
                            {"backupnum": 11, "record": 77},
                            {"backupnum": 10, "record": 12},
                        ],
                    },
                ),
                CsvRow(4, 2, {}),
            ],
        )

    def test_everyErrorIsNamed(self) -> None:
        text = "enrollid,admin,enabled,password\n0,1,true,\n3,x,maybe,123456789\n4,1\n"
        rows, errors = parsePersonsCSV(text)
        self.assertEqual(rows, [])
        self.assertEqual(
            [(e.line, e.field) for e in errors],
            [(2, "enrollid"), (3, "admin"), (3, "enabled"), (3, "password"), (4, "row")],
        )

    def test_header(self) -> None:
        self.assertEqual(parsePersonsCSV("")[1][0].line, 1)
        errors = parsePersonsCSV("name,name\n")[1]
        self.assertEqual([e.field for e in errors], ["enrollid", "header"])
        self.assertIsInstance(errors[0], CsvError)
