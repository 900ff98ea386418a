"""Synthesises the fruits stack into a CloudFormation template.

    python deploy/stack/app.py [--out DIR] [-c KEY=VALUE ...]   # DIR/Fruits.template.json

Context keys (-c): kms_buckets=true, audit=true, photo_days=N, log_days=N,
transform_days=N, input_prefix=P, output_prefix=P (see fruits_stack.py).
`cdk synth`/`cdk deploy` (cdk.json) run this file too. The synthesiser needs no
`cdk bootstrap`: the stack has no assets (no Lambda code, no Docker images
built by CDK), so the template is all there is to deploy.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_cdk as cdk  # noqa: E402

from fruits_stack import REGION, FruitsStack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("CDK_OUTDIR", "cdk.out"))
    ap.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    # Server access logs let in by the logs bucket's policy, not by an ACL
    # (AWS's recommendation since S3 disabled ACLs by default).
    context = {"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True}
    context.update(c.split("=", 1) for c in args.context)
    app = cdk.App(outdir=args.out, context=context)
    FruitsStack(app, "Fruits", stack_name="fruits",
                # The account comes from the credentials at deploy time; the region never varies.
                env=cdk.Environment(region=REGION),
                synthesizer=cdk.BootstraplessSynthesizer(),
                description="fruits: photos to features on EMR, identification on SageMaker (eu-west-3)",
                tags={"project": "fruits", "data-residency": REGION})
    app.synth()


if __name__ == "__main__":
    main()
