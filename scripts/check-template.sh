#!/usr/bin/env bash
# Checks template.yaml: cfn-lint, `sam validate --lint`, and the project's own rules
# (tests/template: exact runtime, ReportBatchItemFailures, least privilege, visibility >= 6 x
# timeout, DLQ, every route authorized). Needs no AWS credentials and no network.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

echo "check-template: cfn-lint $(cfn-lint --version | awk '{print $2}')"
cfn-lint template.yaml

echo "check-template: sam validate --lint"
# A region is needed to resolve the template's pseudo parameters; no call is made to it.
sam validate --lint --region us-east-1 --template-file template.yaml

echo "check-template: template rules"
python3 -m pytest -q -p no:cacheprovider tests/template
