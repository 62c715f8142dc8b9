"""The JSON views of access control (L{tm20.access.model}), shared by the doors."""

from __future__ import annotations

from typing import Any

from tm20.access.device import NOT_ON_DEVICE, DevicePlan
from tm20.access.model import AccessRule, GroupAccess, Holiday, QrCode
from tm20.views.model import isoTime

__all__ = ["codeJSON", "devicePlanJSON", "groupAccessJSON", "holidayJSON", "ruleJSON"]


def ruleJSON(rule: AccessRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "description": rule.description,
        "persons": list(rule.persons),
        "personGroups": list(rule.personGroups),
        "terminals": list(rule.terminals),
        "terminalGroups": list(rule.terminalGroups),
        "windows": [{"days": list(w.days), "start": w.start, "end": w.end} for w in rule.windows],
        "holidays": rule.holidays,
        "createdAt": isoTime(rule.createdAt),
        "updatedAt": isoTime(rule.updatedAt),
    }


def holidayJSON(holiday: Holiday) -> dict[str, Any]:
    return {
        "id": holiday.id,
        "name": holiday.name,
        "start": holiday.start,
        "end": holiday.end,
        "terminalGroups": list(holiday.terminalGroups),
        "createdAt": isoTime(holiday.createdAt),
    }


def codeJSON(code: QrCode, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": code.id,
        "enrollid": code.enrollid,
        "visitorName": code.visitorName,
        "validFrom": isoTime(code.validFrom),
        "validUntil": isoTime(code.validUntil),
        "terminals": list(code.terminals),
        "terminalGroups": list(code.terminalGroups),
        "singleUse": code.singleUse,
        "usedAt": isoTime(code.usedAt),
        "usedSn": code.usedSn,
        "revokedAt": isoTime(code.revokedAt),
        "createdAt": isoTime(code.createdAt),
    }
    if text is not None:
        out["code"] = text
    return out


def groupAccessJSON(settings: GroupAccess) -> dict[str, Any]:
    return {
        "group": settings.group,
        "unknownEnrollid": settings.unknownEnrollid,
        "unknownCode": settings.unknownCode,
        "updatedAt": isoTime(settings.updatedAt),
    }


def devicePlanJSON(plan: DevicePlan) -> dict[str, Any]:
    return {
        "sn": plan.sn,
        "dayzone": list(plan.dayzone),
        "weekzone": list(plan.weekzone),
        "userlocks": list(plan.userlocks),
        "notOnDevice": list(NOT_ON_DEVICE),
    }
