"""Every IAM policy document under deploy/, linted with parliament (1.6.4).

moto evaluates no IAM condition (conditional Allows become Allows, conditional Denies
become Denies), so the policies' content is checked statically instead: unknown actions,
actions that do not apply to the resources named, condition keys that do not exist for
the action, operators of the wrong type, malformed statements.

Documents with placeholders are rendered first with sample names, by the kits' own
renderers where there is one (deploy/emr/render.sh, deploy/iam/render.sh), else by
replacing CAPITAL_NAMES with sample values. Any finding fails, except those listed in
EXPECTED, each with its reason.

Community auditors are on: they add checks for risky grants (permissions management,
credentials exposure, privilege escalation, sensitive S3 access) that matter more for
a kit handing roles to EMR than the one finding they raise here, which is expected.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"
SAMPLE = {
    "ARTIFACT_BUCKET": "fruits-artifacts", "LOG_BUCKET": "fruits-logs",
    "INPUT_BUCKET": "fruits-photos", "INPUT_PREFIX": "fruits-360",
    "OUTPUT_BUCKET": "fruits-results", "OUTPUT_PREFIX": "runs/2026-11",
    "SUBNET_ID": "subnet-0123456789abcdef0", "BUCKET": "fruits-results",
    "ACCOUNT_ID": "123456789012", "ACCOUNT": "123456789012", "REGION": "eu-west-3",
}
WHEEL = "fruits-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl"

# Findings that are right to raise and right to accept, per file: (issue, actions).
EXPECTED = {
    # The EMR service role must hand the instance role to EC2 when it launches the nodes:
    # iam:PassRole is the purpose of this policy. It is limited to that one role ARN and to
    # ec2.amazonaws.com (iam:PassedToService). The community auditor flags every
    # iam:PassRole as "permissions management"; a PassRole anywhere else still fails.
    "deploy/emr/service-role-passrole.json": {("PERMISSIONS_MANAGEMENT_ACTIONS", ("iam:passrole",))},
    # A role that pulls its image from a private ECR repository needs ecr:GetAuthorizationToken,
    # which has no resource to scope it to (Resource "*", statement EcrTokenIsNotResourceScoped).
    # The community auditor flags it as "credentials exposure".
    "deploy/iam/sagemaker-execution-policy.json": {("CREDENTIALS_EXPOSURE", ("ecr:getauthorizationtoken",))},
}


def is_policy(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "Statement" in doc


POLICIES = sorted(p.relative_to(REPO).as_posix() for p in DEPLOY.rglob("*.json") if is_policy(p))


def is_trust_policy(doc: dict) -> bool:
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    actions = [a for s in statements for a in ([s.get("Action")] if isinstance(s.get("Action"), str)
                                               else s.get("Action") or [])]
    return all("Principal" in s and "Resource" not in s for s in statements) and \
        bool(actions) and all(a.startswith("sts:") for a in actions)


@pytest.fixture(scope="module")
def parliament():
    import parliament as p
    # What `parliament --include-community-auditors` does before analysing.
    p.override_config(Path(p.__file__).parent / "community_auditors" / "config_override.yaml")
    return p


@pytest.fixture(scope="module")
def emr_rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emr")
    names = {k: v for k, v in SAMPLE.items() if k in (
        "ARTIFACT_BUCKET", "LOG_BUCKET", "INPUT_BUCKET", "INPUT_PREFIX", "OUTPUT_BUCKET", "OUTPUT_PREFIX", "SUBNET_ID")}
    subprocess.run([DEPLOY / "emr/render.sh", "--out", out, *(f"{k}={v}" for k, v in names.items()),
                    f"WHEEL={WHEEL}"], check=True, capture_output=True, text=True, cwd=REPO)
    return out


def rendered(rel: str, emr_rendered: Path) -> str:
    """The document as it will be applied, with sample names."""
    path = REPO / rel
    if rel.startswith("deploy/emr/") and (emr_rendered / path.name).exists():
        return (emr_rendered / path.name).read_text()
    if rel == "deploy/iam/pipeline-policy.json":
        args = ["pipeline", SAMPLE["INPUT_BUCKET"], SAMPLE["INPUT_PREFIX"], SAMPLE["OUTPUT_BUCKET"], SAMPLE["OUTPUT_PREFIX"]]
    elif rel == "deploy/iam/bucket-policy.json":
        args = ["bucket", SAMPLE["BUCKET"]]
    else:
        # No renderer: CAPITAL_NAMES become sample values (unknown ones: lower-case-names).
        return re.sub(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b",
                      lambda m: SAMPLE.get(m.group(0), m.group(0).lower().replace("_", "-")), path.read_text())
    return subprocess.run([DEPLOY / "iam/render.sh", *args], check=True, capture_output=True, text=True).stdout


def findings(parliament, text: str, name: str) -> list[str]:
    from parliament.cli import is_finding_filtered

    doc = json.loads(text)
    policy = parliament.analyze_policy_string(text, name, include_community_auditors=True)
    out = []
    for f in map(parliament.enhance_finding, policy.findings):
        if is_finding_filtered(f, "INFO"):
            continue
        # A role's trust policy has no Resource: the role itself is the resource. parliament
        # reads every document as an identity policy and calls it malformed. (Its own
        # ignore_locations setting cannot express this in 1.6.4: make_list() turns plain
        # YAML values into [], so no location ever matches.)
        if f.issue == "MALFORMED" and "neither Resource nor NotResource" in (f.detail or "") and is_trust_policy(doc):
            continue
        where = f.location if isinstance(f.location, dict) else {}
        actions = tuple(sorted(a.lower() for a in where.get("actions", [])))
        if (f.issue, actions) in EXPECTED.get(name, set()):
            continue
        out.append(f"{f.severity} {f.issue} - {f.title} - {f.detail} - {f.location}")
    return out


def test_the_known_policies_are_found():
    known = {"deploy/emr/artifacts-policy.json", "deploy/emr/ec2-trust.json", "deploy/emr/emr-service-trust.json",
             "deploy/emr/service-role-passrole.json", "deploy/iam/bucket-policy.json", "deploy/iam/pipeline-policy.json"}
    assert known <= set(POLICIES), f"policy discovery under deploy/ found only {POLICIES}"


@pytest.mark.parametrize("rel", POLICIES)
def test_policy_has_no_findings(parliament, emr_rendered, rel):
    text = rendered(rel, emr_rendered)
    left = re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", json.dumps(json.loads(text)["Statement"]))
    assert not left, f"{rel}: placeholders left after rendering: {sorted(set(left))}"
    found = findings(parliament, text, rel)
    assert not found, f"parliament on {rel} (rendered):\n" + "\n".join(found)


def test_the_linter_catches_mistakes(parliament, emr_rendered):
    """The harness is not blind: a misspelt action and a condition key that does not apply."""
    doc = json.loads(rendered("deploy/emr/artifacts-policy.json", emr_rendered))
    doc["Statement"][2]["Action"] = "s3:GetObjects"
    doc["Statement"][1]["Condition"] = {"StringLike": {"s3:prefixx": ["fruits/*"]}}
    found = findings(parliament, json.dumps(doc), "broken.json")
    assert any("s3:GetObjects" in f or "UNKNOWN_ACTION" in f for f in found), found
    assert any("s3:prefixx" in f for f in found), found
