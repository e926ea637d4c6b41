"""The read API's OpenAPI 3.1 description, served at /openapi.json (companion/surfaces/api.py).
tests/test_openapi.py holds the real responses to it."""

from __future__ import annotations

from typing import Any

from companion import __version__

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_NULLABLE_STR = {"type": ["string", "null"]}
_DEVICE = {"type": "object", "required": ["eui", "type"], "properties": {
    "eui": {"type": "string", "pattern": "^[0-9A-F]{2}(-[0-9A-F]{2}){7}$"}, "type": {"type": "string"},
    "status": _NULLABLE_STR, "mpxn": _NULLABLE_STR, "serial": _NULLABLE_STR, "smets": _NULLABLE_STR,
    "mode": _NULLABLE_STR, "firmware": _NULLABLE_STR, "answered": {"type": ["boolean", "null"]}}}
_SITE = {"type": "object", "required": ["mpxn", "flag", "since", "reason", "version", "event_ids", "devices"],
         "properties": {
             "mpxn": {"type": "string", "pattern": "^[0-9]{6,13}$"},
             "flag": {"enum": ["A", "I", "N", None]}, "legacy_flag": {"enum": ["A", "I", "N", "W", "", None]},
             "since": {"type": ["string", "null"], "format": "date"}, "reason": {"type": "string"},
             "override": _NULLABLE_STR, "version": {"type": "integer", "minimum": 0},
             "event_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"},
             "event_ids": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
             "evidence_read_time": {"type": ["integer", "null"]}, "evidence_hub_time": {"type": ["integer", "null"]},
             "hub": {"type": ["object", "null"]}, "wan": {"type": ["object", "null"]},
             "devices": {"type": "array", "items": _DEVICE},
             "meter": {"type": ["string", "null"], "description": "the device that is the meter point's meter"},
             "stale": {"type": "array", "items": {"type": "string"},
                       "description": "devices the hub's log lists beside the meter (an old meter)"},
             "dcc": {"type": "object", "description": "the DCC's side: sources, the inventory's devices, conflicts"},
             "suspicious": {"type": "array", "items": {"type": "object"}}}}
_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"enum": ["ok", "failing"]}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    mpxn = {"name": "mpxn", "in": "path", "required": True,
            "description": "an MPAN core (13 digits, its last a check digit: 400 if wrong) or an MPRN (6 to 10 digits)",
            "schema": {"type": "string", "pattern": "^([0-9]{13}|[0-9]{6,10})$"}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    unauthorised = _json(_ERROR, "no valid bearer token (companion tokens add NAME)")
    return {
        "openapi": "3.1.0",
        "info": {"title": "flagwise read API", "version": __version__,
                 "description": "What is at a meter point, and why: the DCC Service Flag (MP077) derived from "
                                "signed handheld evidence."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"Site": _SITE, "Device": _DEVICE, "Error": _ERROR}},
        "paths": {
            "/v1/sites/{mpxn}": {"get": {
                "summary": "the flag, its date and reason, the devices and the events behind it",
                "security": secured, "parameters": [mpxn],
                "responses": {"200": _json({"$ref": "#/components/schemas/Site"}, "the meter point"),
                              "400": _json(_ERROR, "not an MPAN core or an MPRN"),
                              "401": unauthorised, "404": _json(_ERROR, "no event names this meter point")}}},
            "/v1/sites/{mpxn}/events": {"get": {
                "summary": "the events behind the flag, a page at a time in stored order (survey time, device "
                           "time, counter, device, id)", "security": secured,
                "parameters": [mpxn,
                               {"name": "limit", "in": "query", "required": False,
                                "description": "events on this page (default 100)",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                               {"name": "cursor", "in": "query", "required": False,
                                "description": "the `next` of the previous page",
                                "schema": {"type": "string", "maxLength": 120}}],
                "responses": {"200": _json({"type": "object", "required": ["mpxn", "events", "next"], "properties": {
                    "mpxn": {"type": "string"}, "events": {"type": "array", "items": {"type": "object"}},
                    "next": {"type": ["string", "null"]}}},
                    "the events"), "400": _json(_ERROR, "not an MPAN core or an MPRN, or a bad limit or cursor"),
                    "401": unauthorised,
                    "404": _json(_ERROR, "no event names this meter point")}}},
            **_both_sources(secured, unauthorised),
            "/v1/keys": {"get": {"summary": "the bridge public keys that sign acks and flag updates", "security": [],
                                 "responses": {"200": _json({"type": "object", "required": ["keys"], "properties": {
                                     "keys": {"type": "array", "items": {"type": "object"}}}}, "the keys")}}},
            "/healthz": {"get": {"summary": "liveness", "security": [],
                                 "responses": {"200": _json(_HEALTH, "alive"), "503": _json(_HEALTH, "not")}}},
            "/readyz": {"get": {"summary": "readiness: broker link and store up", "security": [],
                                "responses": {"200": _json(_HEALTH, "ready"), "503": _json(_HEALTH, "not")}}},
            "/metrics": {"get": {"summary": "Prometheus text format", "security": [],
                                 "responses": {"200": {"description": "metrics",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "this document", "security": [],
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
        },
    }


def _both_sources(secured: list[dict[str, list[str]]], unauthorised: dict[str, Any]) -> dict[str, Any]:
    """The operations on the field and the DCC's view together: devices, alert triage, conflicts."""
    return {
    "/v1/devices/{eui}": {"get": {
        "summary": "one smart device from both sources: where it was (meter point, hub, from when to "
                   "when, by which evidence), its condition now and why", "security": secured,
        "parameters": [{"name": "eui", "in": "path", "required": True, "description": "EUI-64, XX-XX-..",
                        "schema": {"type": "string", "maxLength": 40}}],
        "responses": {"200": _json({"type": "object", "required": ["device_id", "condition", "placements"],
                                    "properties": {"device_id": {"type": "string"},
                                                   "condition": {"type": "string", "enum": [
                                                       "operational", "installed_not_commissioned", "dumb",
                                                       "removed", "suspended", "unknown"]},
                                                   "placements": {"type": "array",
                                                                  "items": {"type": "object"}}}},
                                   "the device"),
                      "400": _json(_ERROR, "not an EUI-64"), "401": unauthorised,
                      "404": _json(_ERROR, "neither source knows the device")}}},
    "/v1/alerts/triage": {"post": {
        "summary": "network operators' alerts: was a SMETS2 system expected at the meter point then, was "
                   "the alerting device its meter, and a verdict with its evidence (read and dno tokens)",
        "security": secured,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["alerts"], "properties": {"alerts": {
                "type": "array", "maxItems": 1000, "items": {
                    "type": "object", "required": ["mpan", "device_id", "time"], "properties": {
                        "mpan": {"type": "string"}, "device_id": {"type": "string"},
                        "time": {"type": "string", "format": "date-time"},
                        "alert_code": {"type": ["string", "null"]}}}}}}}}},
        "responses": {"200": _json({"type": "object", "required": ["results"], "properties": {
            "results": {"type": "array", "items": {"type": "object", "required": ["verdict"], "properties": {
                "verdict": {"enum": ["expected", "device_not_here", "no_smart_system", "smets1", "unknown"]},
                "smets2_expected": {"type": ["boolean", "null"]},
                "device_is_meter": {"type": ["boolean", "null"]},
                "since": {"type": ["string", "null"]}, "evidence": {"type": ["string", "null"]}}}}}},
            "one answer an alert, in order"),
            "400": _json(_ERROR, "a bad alert (the message names it and its field)"),
            "401": unauthorised, "413": _json(_ERROR, "more than 1,000 alerts")}}},
    "/v1/conflicts": {"get": {
        "summary": "where the field and the DCC's inventory disagree, each with both sides and its fix",
        "security": secured,
        "parameters": [{"name": "class", "in": "query", "required": False,
                        "description": "only this conflict class",
                        "schema": {"type": "string", "maxLength": 60}}],
        "responses": {"200": _json({"type": "object", "required": ["conflicts"], "properties": {
            "conflicts": {"type": "array", "items": {"type": "object"}}}}, "the conflicts"),
            "400": _json(_ERROR, "an unknown conflict class"), "401": unauthorised}}},
    }
