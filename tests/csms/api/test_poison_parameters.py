"""Every API parameter answers a value it cannot use with 4xx and a message, never 500 (15.6).

Walks the OpenAPI document: every operation's path and query parameters get NUL,
integers above int64, years 1 and 9999 (with offsets that push them off the
calendar) and offsets above int64.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.csms.api.conftest import Api

POISON_BY_TYPE: dict[str, list[str]] = {
    "integer": [str(2**64), str(-(2**63) - 1), "99999999999999999999999999"],
    "number": ["1e999", "-1e999"],
    "date-time": ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                  "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
    "string": ["a\x00b", "\x00", "9" * 30],
}  # fmt: skip


def _kind(schema: dict[str, Any]) -> str:
    options = schema.get("anyOf", [schema])
    for option in options:
        if option.get("format") == "date-time":
            return "date-time"
        if option.get("type") in ("integer", "number"):
            return str(option["type"])
    return "string"


def _cases(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, url, parameter, value) for each poison value of each parameter."""
    cases = []
    for path, operations in document["paths"].items():
        if path.endswith("/stream"):  # an event stream never ends; its filters are checked
            continue  # before it starts, the same way (tests/csms/monitoring)
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            fine = {p["name"]: "1" for p in params if p["in"] == "path"}
            for param in params:
                if param["in"] not in ("path", "query"):
                    continue
                for value in POISON_BY_TYPE[_kind(param.get("schema", {}))]:
                    values = fine | ({param["name"]: value} if param["in"] == "path" else {})
                    url = path.format(**{k: quote(v, safe="") for k, v in values.items()})
                    if param["in"] == "query":
                        url += f"?{param['name']}={quote(value, safe='')}"
                    cases.append(
                        (method.upper(), url.removeprefix("/api/v1"), param["name"], value)
                    )
    return cases


async def test_no_parameter_value_makes_the_api_answer_500(api: Api) -> None:
    document = (await api.anonymous.get("/openapi.json")).json()
    cases = _cases(document)
    assert len(cases) > 100
    failures = []
    for method, url, name, value in cases:
        body = {} if method in ("POST", "PUT") else None
        answer = await api.operator.request(method, url, json=body)
        if answer.status_code >= 500:
            failures.append(f"{method} {url} ({name}={value!r}): {answer.status_code}")
        elif answer.status_code >= 400:
            assert answer.json().get("error"), f"{method} {url}: no message"
    assert failures == []
