"""An evaluator of IAM policies for the conditions moto does not evaluate.

moto enforces the actions and resources of identity policies but ignores
conditions (it has no request context), so the parts of the project's policies
that rest on conditions (the Paris region lock, list-only-this-prefix, TLS and
encryption required by the bucket policy) are checked here instead, against
the same rendered documents, following AWS's documented evaluation logic:

- a request is allowed when some statement allows it and none denies it
  (an explicit Deny always wins; no Allow means an implicit deny);
- Action/NotAction and Resource/NotResource match with `*` and `?` wildcards
  (actions case-insensitively);
- every condition operator of a statement must hold, every key of an
  operator must hold, and a key holds when any of the request's values
  matches any of the policy's values (a negated operator: when none does);
- a key missing from the request makes the condition false, except for
  `Null`, the `...IfExists` forms and the negated operators (`StringNotEquals`,
  `StringNotLike`), which hold: no value of the request equals a policy value.

Only the operators the project's policies use are implemented (StringEquals,
StringNotEquals, StringLike, StringNotLike, Bool, Null and their IfExists
forms); any other makes `evaluate` raise, so a new policy cannot be passed
silently. References: "Policy evaluation logic" and "IAM JSON policy elements:
Condition operators" in the IAM User Guide.
"""

import re


def _glob(pattern, value, case_sensitive=True):
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _string_match(op, policy_values, request_values):
    if op in ("StringEquals", "Bool"):
        return any(str(r).lower() == str(p).lower() if op == "Bool" else str(r) == str(p)
                   for p in policy_values for r in request_values)
    if op == "StringLike":
        return any(_glob(str(p), str(r)) for p in policy_values for r in request_values)
    raise ValueError(f"condition operator {op} is not implemented")


def _condition_holds(op, key, policy_values, context):
    policy_values = _as_list(policy_values)
    present = key in context and context[key] is not None
    if op == "Null":
        wanted_missing = str(policy_values[0]).lower() == "true"
        return wanted_missing != present
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    negated = base in ("StringNotEquals", "StringNotLike")
    if not present:
        return if_exists or negated
    request_values = _as_list(context[key])
    positive = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}.get(base, base)
    if positive not in ("StringEquals", "StringLike", "Bool"):
        raise ValueError(f"condition operator {op} is not implemented")
    matched = _string_match(positive, policy_values, request_values)
    return not matched if negated else matched


def _statement_applies(statement, action, resource, context):
    if "Action" in statement:
        if not any(_glob(a, action, case_sensitive=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, action, case_sensitive=False) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_glob(r, resource) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(_glob(r, resource) for r in _as_list(statement["NotResource"])):
        return False
    for op, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            if not _condition_holds(op, key, values, context):
                return False
    return True


def evaluate(policies, action, resource, context=None):
    """"Allow", "ExplicitDeny" or "ImplicitDeny" for one request under `policies`."""
    context = context or {}
    allowed = False
    for policy in policies:
        for statement in _as_list(policy["Statement"]):
            if not _statement_applies(statement, action, resource, context):
                continue
            if statement["Effect"] == "Deny":
                return "ExplicitDeny"
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


