"""Requests checked against botocore's service models, offline.

moto accepts much that AWS refuses (unknown enum values, over-long names, a misspelt
member that the CLI passed through as JSON), so the tests capture every API call the AWS
CLI makes (awsplug/fruits_aws_capture.py writes one JSON line per call) and validate each
here, in two layers:
  1. botocore's own ParamValidator, which the SDK runs before sending: required and
     unknown members, types, and *min* lengths/values only;
  2. what botocore leaves out: max lengths/values/sizes, enum membership, and the
     model's regex `pattern` (Java-style; matched on the whole value).

    calls = read_calls(capture_file)
    assert_valid(calls)                       # AssertionError naming each bad call
    validate("emr", "RunJobFlow", params)     # -> list of problems, [] when valid
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator

# Java's surrogate-pair idiom for "any character outside the BMP", which Python's re
# rejects; the same range written the Python way.
_SURROGATE_IDIOM = "\\uD800\\uDC00-\\uDBFF\\uDFFF"


@dataclass
class Call:
    index: int                    # 1-based position in the capture file
    service: str                  # botocore service name: emr, iam, s3, sts, ...
    operation: str                # API operation: RunJobFlow, CreateRole, PutObject, ...
    region: str | None            # the client's region when the CLI made the call
    params: dict
    botocore_validation: str      # "ok", or botocore's report made in the CLI process

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"


def read_calls(path: str | Path) -> list[Call]:
    """Every call recorded in a capture file, in order (none if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    calls = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            r = json.loads(line)
            calls.append(Call(i, r["service"], r["operation"], r.get("region"), r["params"],
                              r.get("botocore_validation", "ok")))
    return calls


@lru_cache(maxsize=None)
def _service(service: str):
    return botocore.session.get_session().get_service_model(service)


@lru_cache(maxsize=None)
def _regex(pattern: str):
    try:
        return re.compile(pattern.replace(_SURROGATE_IDIOM, "\\U00010000-\\U0010FFFF"), re.S)
    except re.error:
        return None


def _extra(value, shape, path: str, errs: list[str]) -> None:
    md, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                _extra(v, shape.members[k], f"{path}.{k}", errs)
    elif kind == "list" and isinstance(value, list):
        if "max" in md and len(value) > md["max"]:
            errs.append(f"{path}: {len(value)} items > max {md['max']}")
        for i, v in enumerate(value):
            _extra(v, shape.member, f"{path}[{i}]", errs)
    elif kind == "map" and isinstance(value, dict):
        if "max" in md and len(value) > md["max"]:
            errs.append(f"{path}: {len(value)} entries > max {md['max']}")
        for k, v in value.items():
            _extra(k, shape.key, f"{path}<key {k!r}>", errs)
            _extra(v, shape.value, f"{path}[{k!r}]", errs)
    elif kind == "string" and isinstance(value, str):
        if "max" in md and len(value) > md["max"]:
            errs.append(f"{path}: length {len(value)} > max {md['max']}")
        if shape.enum and value not in shape.enum:
            errs.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "pattern" in md:
            rx = _regex(md["pattern"])
            if rx is not None and not rx.fullmatch(value):
                errs.append(f"{path}: {value!r} does not match the pattern {md['pattern']!r}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        if "max" in md and value > md["max"]:
            errs.append(f"{path}: {value} > max {md['max']}")


def validate(service: str, operation: str, params: dict) -> list[str]:
    """Problems of one request against the service model; [] when it is valid."""
    op = _service(service).operation_model(operation)
    errs = []
    report = ParamValidator().validate(params, op.input_shape)
    if report.has_errors():
        errs.append("botocore: " + report.generate_report().replace("\n", "\n    "))
    _extra(params, op.input_shape, operation, errs)
    return errs


def problems(calls: list[Call]) -> list[str]:
    """One entry per invalid call: '#7 emr.RunJobFlow: <problems>'."""
    out = []
    for c in calls:
        errs = validate(c.service, c.operation, c.params)
        if errs:
            out.append(f"#{c.index} {c.name}:\n  " + "\n  ".join(errs))
    return out


def assert_valid(calls: list[Call]) -> None:
    bad = problems(calls)
    assert not bad, (f"{len(bad)} of {len(calls)} captured AWS calls do not fit botocore's "
                     "service models:\n" + "\n".join(bad))


def summary(calls: list[Call]) -> str:
    """'emr.RunJobFlow x2, s3.PutObject x5, ...' in order of first use."""
    counts = Counter(c.name for c in calls)
    return ", ".join(f"{name} x{n}" for name, n in counts.items())


def only(calls: list[Call], name: str) -> list[Call]:
    """The calls of one operation, e.g. only(calls, "emr.RunJobFlow")."""
    return [c for c in calls if c.name == name]
