"""AWS CLI v1 plugin (and botocore event hook) that records every API call the CLI makes.

For each call it appends one JSON line to $AWS_CAPTURE_FILE:
    {"service": "emr", "operation": "RunJobFlow", "region": "eu-west-3",
     "params": {...the API parameters exactly as the CLI built them...},
     "botocore_validation": "ok" | "<botocore's report>"}
The record is written before botocore validates and serialises the request, so calls
that botocore then refuses are recorded too. tests/cloud/awsapi.py validates the records
against the service models, with the checks botocore leaves out (max, enum, pattern).

Load it in the AWS CLI v1 through the config file ($AWS_CONFIG_FILE) and PYTHONPATH:
    [plugins]
    fruits_capture = fruits_aws_capture
or in boto3: fruits_aws_capture.install(client.meta.events).

Other environment variables:
  AWS_CAPTURE_ALLOWED_ENDPOINT  if set, a request to any other URL is refused before it is
                                sent (so a script that forgets the endpoint cannot reach AWS)
  AWS_CAPTURE_NO_SEND=1         answer every call locally (AWS_CAPTURE_REPLY, JSON, merged
                                into a built-in reply for RunJobFlow/AddJobFlowSteps)
"""
import json
import os

from botocore.validate import ParamValidator

_FAKE_REPLIES = {
    "RunJobFlow": {"JobFlowId": "j-CAPTURED00000", "ClusterArn":
                   "arn:aws:elasticmapreduce:eu-west-3:000000000000:cluster/j-CAPTURED00000"},
    "AddJobFlowSteps": {"StepIds": ["s-CAPTURED00000"]},
}


class _FakeHttp:
    status_code = 200
    headers = {}
    content = b""
    raw = None


def _on_params(params, model, context=None, **kwargs):
    report = ParamValidator().validate(params, model.input_shape)
    rec = {"service": model.service_model.service_name, "operation": model.name,
           "region": (context or {}).get("client_region"), "params": params,
           "botocore_validation": report.generate_report() if report.has_errors() else "ok"}
    line = (json.dumps(rec, default=str) + "\n").encode()
    # One write(2) per record on an O_APPEND file: CLI processes running side by side
    # (the kit's scripts run independent calls in parallel) cannot interleave lines.
    fd = os.open(os.environ.get("AWS_CAPTURE_FILE", "aws-capture.jsonl"),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _on_before_call(model, params, **kwargs):
    allowed = os.environ.get("AWS_CAPTURE_ALLOWED_ENDPOINT")
    url = params.get("url", "") if isinstance(params, dict) else ""
    if allowed and not url.startswith(allowed):
        raise RuntimeError(f"fruits_aws_capture: refusing to send {model.name} to {url!r}: "
                           f"only {allowed} is allowed (AWS_CAPTURE_ALLOWED_ENDPOINT)")
    if os.environ.get("AWS_CAPTURE_NO_SEND") != "1":
        return None
    reply = dict(_FAKE_REPLIES.get(model.name, {}))
    reply.update(json.loads(os.environ.get("AWS_CAPTURE_REPLY", "{}")))
    reply.setdefault("ResponseMetadata", {"HTTPStatusCode": 200})
    return _FakeHttp(), reply


def install(events):
    events.register("provide-client-params", _on_params)
    events.register("before-call", _on_before_call)


def awscli_initialize(cli):  # the AWS CLI v1 plugin entry point
    install(cli)
