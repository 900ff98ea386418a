"""What the account's IAM holds of the EMR kit, for setup-account.sh and teardown.sh.

Reads the output of `aws iam get-account-authorization-details --filter Role
LocalManagedPolicy` (one call instead of a dozen get/list calls) and prints shell
assignments (values shell-quoted) that the scripts eval:

  python3 iam_state.py DETAILS.json [--trust-instance F] [--trust-service F] [--inline F]
                       [--policy NAME=FILE]...

  instance_role_exists instance_trust_same instance_attached instance_profile_roles
  service_role_exists service_role_ours service_trust_same service_attached
  service_inline_exists service_inline_same
  policy_<name>_arn policy_<name>_state (missing|same|differs) policy_<name>_versions
  policy_<name>_oldest policy_<name>_others     (<name> with '-' as '_')

Booleans are 0/1; lists are space-separated with a space at each end (" a b ").
"""
import json
import shlex
import sys
import urllib.parse

INSTANCE_ROLE = "fruits-emr-instance-profile"
SERVICE_ROLE = "EMR_DefaultRole_V2"
INLINE = "pass-fruits-instance-role"
CREATOR = ("created-by", "fruits-setup-account")


def doc(value):
    """A policy document as IAM returns it: an object, or (URL-encoded) JSON text."""
    if isinstance(value, str):
        text = urllib.parse.unquote(value) if value.lstrip().startswith("%7B") else value
        return json.loads(text)
    return value


def load(path):
    return json.load(open(path)) if path else None


def main(argv):
    details = json.load(open(argv[0]))
    opts = {"--trust-instance": None, "--trust-service": None, "--inline": None}
    policies = {}
    rest = argv[1:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--policy":
            name, _, path = value.partition("=")
            policies[name] = path
        elif flag in opts:
            opts[flag] = value
        else:
            sys.exit(f"iam_state.py: unknown option {flag}")
    roles = {r["RoleName"]: r for r in details.get("RoleDetailList", [])}
    out = {}

    def as_list(values):
        return " " + " ".join(values) + " " if values else " "

    r = roles.get(INSTANCE_ROLE)
    out["instance_role_exists"] = int(r is not None)
    want = load(opts["--trust-instance"])
    out["instance_trust_same"] = int(r is not None and want is not None
                                     and doc(r["AssumeRolePolicyDocument"]) == want)
    out["instance_attached"] = as_list([p["PolicyArn"] for p in (r or {}).get("AttachedManagedPolicies", [])])
    profile = [p for p in (r or {}).get("InstanceProfileList", []) if p["InstanceProfileName"] == INSTANCE_ROLE]
    out["instance_profile_roles"] = as_list([x["RoleName"] for p in profile for x in p.get("Roles", [])])

    r = roles.get(SERVICE_ROLE)
    out["service_role_exists"] = int(r is not None)
    tags = {t["Key"]: t["Value"] for t in (r or {}).get("Tags", [])}
    out["service_role_ours"] = int(tags.get(CREATOR[0]) == CREATOR[1])
    want = load(opts["--trust-service"])
    out["service_trust_same"] = int(r is not None and want is not None
                                    and doc(r["AssumeRolePolicyDocument"]) == want)
    out["service_attached"] = as_list([p["PolicyArn"] for p in (r or {}).get("AttachedManagedPolicies", [])])
    inline = {p["PolicyName"]: p for p in (r or {}).get("RolePolicyList", [])}
    out["service_inline_exists"] = int(INLINE in inline)
    want = load(opts["--inline"])
    out["service_inline_same"] = int(INLINE in inline and want is not None
                                     and doc(inline[INLINE]["PolicyDocument"]) == want)

    local = {p["Arn"].rsplit("/", 1)[-1]: p for p in details.get("Policies", [])
             if p.get("Path", "/") == "/"}
    for name, path in policies.items():
        key = "policy_" + name.replace("-", "_")
        p = local.get(name)
        versions = (p or {}).get("PolicyVersionList", [])
        default = [v for v in versions if v.get("IsDefaultVersion")]
        others = sorted((v for v in versions if not v.get("IsDefaultVersion")), key=lambda v: v["CreateDate"])
        out[key + "_arn"] = (p or {}).get("Arn", "")
        if p is None:
            out[key + "_state"] = "missing"
        elif path and default and doc(default[0]["Document"]) == load(path):
            out[key + "_state"] = "same"
        else:
            out[key + "_state"] = "differs"
        out[key + "_versions"] = len(versions)
        out[key + "_oldest"] = others[0]["VersionId"] if others else ""
        out[key + "_others"] = as_list([v["VersionId"] for v in others])
    for k, v in out.items():
        print(f"{k}={shlex.quote(str(v))}")


if __name__ == "__main__":
    main(sys.argv[1:])
