"""The rules template.yaml must keep, as one function that lists every violation.

`check(template)` takes the template as loaded by cfn-lint's CloudFormation-aware YAML loader
(`cfnlint.decode.cfn_yaml.load`), so `!Ref`, `!GetAtt`, `!Sub` and `!If` arrive as their long
forms (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`, ...). It returns `Violation`s; each names its
rule, so a test can prove that breaking one rule is caught by that rule.

cfn-lint and `sam validate --lint` check that the template is well formed; they accept a wrong
but well-formed `Runtime` (`provided.al2`) and a misspelt `FunctionResponseTypes` entry, and
they know nothing of this project's rules (timeouts against API Gateway's 30 s, least privilege,
every route authorized). Those are checked here.

`check_least_privilege` also runs on its own over what the SAM transform generates (the roles
SAM writes), so it understands raw IAM resources as well as SAM functions.

Fan-out (issue 12): with VerifyFanOut=Enabled verify lists into a standard queue of its own and
consumes it through an event source mapping; `check_verify_fan_out` holds that queue, the
mapping, the LeafRates table that splits the fleet-wide Leaf rate into processes, and verify's
rights on the queue to the contract (docs/VERIFY.md#fan-out-mode).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

RUNTIME = "provided.al2023"
ARCHITECTURES = ["arm64"]
HANDLER = "bootstrap"
BUILD_METHOD = "rust-cargolambda"
BINARIES = {"connect", "verify"}

API_GATEWAY_LIMIT_S = 30  # HTTP API integration timeout, hard limit
VISIBILITY_FACTOR = 6  # AWS: queue visibility timeout >= 6 x the function timeout
MIN_MAX_RECEIVE_COUNT = 5
FIFO_MAX_BATCH = 10
SQS_DEFAULT_RETENTION_S = 345_600
DEFAULT_UPSTREAM_BUDGET_MS = 25_000  # HttpSettings::default in the crate's config.rs (shared/src)
DEFAULT_HTTP_TIMEOUT_MS = 10_000
RESPONSE_MARGIN_MS = 1_000  # the handler keeps 300 ms; allow for the response and logs too

ROUTES = {
    "POST /connections": "connect",
    "DELETE /connections/{leafUserId}": "connect",
    "GET /connections/{leafUserId}": "verify",
    "POST /leaf/alerts": "verify",
}
SCHEDULER_INPUT = {"source": "stara-connect.scheduler", "action": "verify-all"}
# What Lambda's SQS poller calls with the function's role: the connect queue's event source
# mapping needs these on that queue, nothing more (no sqs:ChangeMessageVisibility: the poller
# lets a failed message reappear when its visibility timeout ends).
POLL_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# Verify's rights on its own queue (issue 12's contract): it sends the run's messages there, its
# mapping polls it, and it may change a message's visibility. On that queue only.
VERIFY_QUEUE_ACTIONS = {"sqs:SendMessage"} | POLL_ACTIONS
# The grower's state is tags on its own login secret (docs/HEALTH.md): connect reads and writes
# them, verify reads them for GET /connections/{id}; on the grower prefix only (GROWER_STATE_ACTIONS).
GROWER_STATE_ACTIONS = {"secretsmanager:DescribeSecret", "secretsmanager:TagResource", "secretsmanager:UntagResource"}
ALLOWED_ACTIONS = {
    "connect": {"secretsmanager:GetSecretValue"} | GROWER_STATE_ACTIONS | POLL_ACTIONS,
    "verify": {
        "secretsmanager:GetSecretValue",
        "secretsmanager:ListSecrets",
        "secretsmanager:DescribeSecret",
    }
    | VERIFY_QUEUE_ACTIONS,
}
# Which queue each SQS action of a function may name: connect polls its queue; verify sends
# repairs to connect's queue and works its own (fan-out). "connect"/"verify" are the queues of
# connect's and verify's event source mappings.
SQS_SCOPE = {
    ("connect", "sqs:ReceiveMessage"): {"connect"},
    ("connect", "sqs:DeleteMessage"): {"connect"},
    ("connect", "sqs:GetQueueAttributes"): {"connect"},
    ("verify", "sqs:SendMessage"): {"connect", "verify"},
    ("verify", "sqs:ReceiveMessage"): {"verify"},
    ("verify", "sqs:DeleteMessage"): {"verify"},
    ("verify", "sqs:GetQueueAttributes"): {"verify"},
}
# Only connect reads grower logins; verify reads the Leaf owner's login and lists secret names.
GROWER_SECRET_READERS = {"connect"}
REQUIRED_PARAMETERS = {
    "LeafSecretArn",
    "StaraSecretPrefix",
    "VerifyScheduleExpression",
    "AutoRepair",
    "VerifyConcurrency",
    "StaraBaseUrl",
    "LeafBaseUrl",
    "AuthMode",
    "JwtIssuer",
    "JwtAudience",
    "JwtWriteScope",
    "JwtReadScope",
    "VerifyFanOut",
    "LeafFleetMaxRps",
}
AUTHORIZED_TYPES = {"AWS_IAM", "JWT", "CUSTOM"}

# JWT mode: which scope parameter each HTTP method needs. A route whose method is not listed
# (ANY, OPTIONS, ...) is refused: it would mix reads and writes under one scope.
SCOPE_OF_METHOD = {
    "POST": "JwtWriteScope",
    "PUT": "JwtWriteScope",
    "PATCH": "JwtWriteScope",
    "DELETE": "JwtWriteScope",
    "GET": "JwtReadScope",
    "HEAD": "JwtReadScope",
}
SCOPE_DEFAULTS = {"JwtWriteScope": "stara-connect/connections.write", "JwtReadScope": "stara-connect/connections.read"}

# Fan-out (issue 12).
FAN_OUT_PARAMETER = "VerifyFanOut"
FAN_OUT_CONDITION = "FanOutEnabled"  # !Equals [!Ref VerifyFanOut, Enabled]
RATE_PARAMETER = "LeafFleetMaxRps"  # the fleet-wide Leaf rate the owner wants
RATE_MAPPING = "LeafRates"  # per rate: MaximumConcurrency and the per-process LeafMaxRps
RATE_DEFAULT = "100"
VERIFY_BATCH_SIZE = 10  # messages per batch of the verify queue's mapping
GROWERS_PER_MESSAGE = 100  # one ListSecrets page per check message
LEAF_REQUESTS_PER_CHECK = 2  # the credentials and their events (a missing grower costs one more)
# A full batch at the per-process rate must take at most this share of verify's timeout: the
# rest covers missing growers' third request, authentication, retries and Leaf's own latency.
BATCH_TIME_SHARE = 0.5
MAX_CONCURRENCY_RANGE = (2, 1000)  # what Lambda accepts for ScalingConfig.MaximumConcurrency
LEAF_MAX_RPS_RANGE = (1, 100_000)  # what the code accepts for LEAF_MAX_RPS
UNCHECKED_METRIC = "Unchecked"  # growers listed but not checked in time (both modes)

# ------------------------------------------------------------------------------------------------
# Least privilege: the only exceptions, each with its reason.
# ------------------------------------------------------------------------------------------------

# Actions an Allow statement of ours may grant on Resource "*", because IAM cannot scope them to
# a resource (the Service Authorization Reference lists no resource type for them). Matched
# exactly (case-insensitively, as IAM does): a wildcard such as `secretsmanager:List*` is no
# exception.
UNSCOPABLE_ACTIONS = {
    "secretsmanager:ListSecrets": "no resource-level permissions; it returns names and metadata, never "
    "values; verify filters the names by STARA_SECRET_PREFIX and reads values only through its scoped GetSecretValue",
    "cloudwatch:PutMetricData": "no resource-level permissions; allowed only with a cloudwatch:namespace "
    "condition, which is the scoping IAM offers for it (our metrics go through EMF log lines today, so nothing grants it)",
}
# Granted on "*" only to a function with Tracing: Active (none today).
TRACING_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray accepts no resource ARN for segments; only with Tracing: Active",
    "xray:PutTelemetryRecords": "X-Ray accepts no resource ARN for telemetry; only with Tracing: Active",
}
# Condition keys that must accompany an unscopable action, where IAM offers one.
REQUIRED_CONDITION_KEYS = {"cloudwatch:putmetricdata": "cloudwatch:namespace"}

# AWS managed policies a role of ours may carry: their documents are AWS's and change without
# us, so each is named here with the reason it is acceptable. Anything else (named in a SAM
# `Policies` entry, attached through ManagedPolicyArns, or implied by a SAM event) is refused.
ALLOWED_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "SAM attaches it to every function role it generates, with no opt-out "
    "short of writing the roles by hand. It allows logs:CreateLogGroup, logs:CreateLogStream and "
    "logs:PutLogEvents on '*': writing log lines, never reading them, and nothing outside CloudWatch Logs. "
    "Each function logs to its own group (LoggingConfig.LogGroup).",
}
# Attached by SAM with Tracing: Active, and allowed only then (none today).
TRACING_MANAGED_POLICIES = {
    "AWSXrayWriteOnlyAccess": "SAM's X-Ray policy for Tracing: Active: trace writes and sampling-rule reads, which X-Ray cannot scope",
    "AWSXRayDaemonWriteAccess": "the same, under the name SAM uses in some partitions",
}
# SAM event types that make SAM grant the poller's permissions itself: a managed policy on '*'
# (SQS, Kinesis, DynamoDB, MSK) or statements we cannot see in the template (MQ, Kafka, DocumentDB).
SAM_PULL_EVENTS = {
    "SQS": "AWSLambdaSQSQueueExecutionRole",
    "Kinesis": "AWSLambdaKinesisExecutionRole",
    "DynamoDB": "AWSLambdaDynamoDBExecutionRole",
    "MSK": "AWSLambdaMSKExecutionRole",
    "MQ": None,
    "SelfManagedKafka": None,
    "DocumentDB": None,
}


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


# ------------------------------------------------------------------------------------------------
# Helpers over the loaded template
# ------------------------------------------------------------------------------------------------


def resources(template: dict, *types: str) -> dict[str, dict]:
    return {name: r for name, r in (template.get("Resources") or {}).items() if isinstance(r, dict) and r.get("Type") in types}


def props(resource: dict) -> dict:
    p = resource.get("Properties")
    return p if isinstance(p, dict) else {}


def function_props(template: dict, resource: dict) -> dict:
    """A SAM function's properties with `Globals.Function` applied (the function's own win)."""
    merged = dict(((template.get("Globals") or {}).get("Function") or {}))
    merged.update(props(resource))
    return merged


def target(value: Any) -> str | None:
    """The logical id that `!Ref X` or `!GetAtt X.Attr` points at."""
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            if isinstance(att, list) and att:
                return att[0]
            if isinstance(att, str):
                return att.split(".", 1)[0]
    return None


def getatt(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and len(value) == 1 and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        if isinstance(att, list) and len(att) == 2:
            return att[0], att[1]
        if isinstance(att, str) and "." in att:
            name, attr = att.split(".", 1)
            return name, attr
    return None


def resolve(value: Any, conditions: dict[str, bool]) -> Any:
    """`value` with every `Fn::If` decided by `conditions`; `AWS::NoValue` becomes None."""
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::If" in value and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions.get(name, False) else no, conditions)
        if len(value) == 1 and value.get("Ref") == "AWS::NoValue":
            return None
        return {k: resolve(v, conditions) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, conditions) for v in value]
    return value


def condition_cases(template: dict) -> list[dict[str, bool]]:
    """Every combination of the template's conditions (each taken as free), so a rule is checked
    in every mode a parameter can select."""
    names = sorted((template.get("Conditions") or {}).keys())[:8]
    return [{n: bool(i >> k & 1) for k, n in enumerate(names)} for i in range(2 ** len(names))]


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def functions_by_binary(template: dict) -> dict[str, tuple[str, dict]]:
    """binary name -> (logical id, resource) for every SAM function built by cargo-lambda."""
    found: dict[str, tuple[str, dict]] = {}
    for name, r in resources(template, "AWS::Serverless::Function").items():
        binary = ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if isinstance(binary, str):
            found.setdefault(binary, (name, r))
    return found


def event_source_mappings(template: dict, function: str) -> dict[str, dict]:
    """The AWS::Lambda::EventSourceMapping resources whose FunctionName is `function` (by Ref or GetAtt)."""
    return {
        name: r
        for name, r in resources(template, "AWS::Lambda::EventSourceMapping").items()
        if target(props(r).get("FunctionName")) == function
    }


def connect_queue(template: dict) -> str | None:
    """Logical id of the queue connect's event source mapping reads."""
    fns = functions_by_binary(template)
    if "connect" not in fns:
        return None
    mappings = event_source_mappings(template, fns["connect"][0])
    if len(mappings) != 1:
        return None
    arn = getatt(props(next(iter(mappings.values()))).get("EventSourceArn"))
    return arn[0] if arn and arn[1] == "Arn" else None


def verify_queue(template: dict) -> str | None:
    """Logical id of the queue verify's VERIFY_QUEUE_URL names (fan-out), in any branch."""
    fns = functions_by_binary(template)
    if "verify" not in fns:
        return None
    url = env(function_props(template, fns["verify"][1])).get("VERIFY_QUEUE_URL")
    names = {target(v) for _, v in branches(url) if isinstance(v, dict) and "Ref" in v}
    return next(iter(names)) if len(names) == 1 else None


def depends_on(resource: dict) -> list[str]:
    return [d for d in as_list(resource.get("DependsOn")) if isinstance(d, str)]


def events(fprops: dict, *types: str) -> dict[str, dict]:
    return {n: e for n, e in (fprops.get("Events") or {}).items() if isinstance(e, dict) and e.get("Type") in types}


def env(fprops: dict) -> dict:
    return ((fprops.get("Environment") or {}).get("Variables")) or {}


def branches(value: Any, under: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every value `value` can take, each with the conditions it takes it under: a tuple of
    (condition, True|False) for the `Fn::If`s passed. Lists are flattened; `AWS::NoValue` is dropped."""
    if value is None or value == {"Ref": "AWS::NoValue"}:
        return []
    if isinstance(value, list):
        return [b for v in value for b in branches(v, under)]
    if isinstance(value, dict) and len(value) == 1 and "Fn::If" in value:
        args = value["Fn::If"]
        if isinstance(args, list) and len(args) == 3 and isinstance(args[0], str):
            name, yes, no = args
            return branches(yes, under + ((name, True),)) + branches(no, under + ((name, False),))
    return [(under, value)]


def guarded_statements(policies: Any) -> Iterator[tuple[tuple, Any, dict | None]]:
    """Each (conditions, policy entry, statement) of a SAM `Policies` value, with `Fn::If` over
    entries or statements opened (both branches, each with the conditions it is under).
    Statement is None for entries that are not inline statements (managed policy names or
    ARNs, SAM policy templates)."""
    for under, entry in branches(policies):
        if isinstance(entry, dict) and "Statement" in entry:
            for inner, st in branches(entry["Statement"], under):
                yield inner, entry, st if isinstance(st, dict) else None
        else:
            yield under, entry, None


def statements(policies: Any) -> Iterator[tuple[Any, dict | None]]:
    """Each (policy entry, statement) of a SAM `Policies` value, `Fn::If` branches opened.
    Statement is None for entries that are not inline statements."""
    for _, entry, st in guarded_statements(policies):
        yield entry, st


def actions_of(st: dict) -> list[str]:
    return [a for a in as_list(st.get("Action")) if isinstance(a, str)]


def parameter(template: dict, value: Any) -> tuple[str, dict] | None:
    name = target(value)
    params = template.get("Parameters") or {}
    if name and "Ref" in value and name in params:
        return name, params[name]
    return None


# ------------------------------------------------------------------------------------------------
# The rules
# ------------------------------------------------------------------------------------------------


def check(template: dict) -> list[Violation]:
    out: list[Violation] = []
    out += check_functions(template)
    fns = functions_by_binary(template)
    if "connect" in fns:
        out += check_connect_timeouts(template, *fns["connect"])
        out += check_connect_queue(template, *fns["connect"])
    if "verify" in fns:
        out += check_verify(template, *fns["verify"], fns.get("connect"))
        out += check_verify_fan_out(template, *fns["verify"])
    out += check_unchecked_alarm(template)
    out += check_routes(template, fns)
    out += check_jwt_scopes(template)
    out += check_iam(template, fns)
    out += check_least_privilege(template)
    out += check_queue_transport(template)
    out += check_parameters_and_outputs(template)
    return out


def check_functions(template: dict) -> list[Violation]:
    out = []
    raw = resources(template, "AWS::Lambda::Function")
    for name in raw:
        out.append(Violation("functions", name, "plain AWS::Lambda::Function: use AWS::Serverless::Function built by cargo-lambda"))
    fns = resources(template, "AWS::Serverless::Function")
    binaries: list[str] = []
    for name, r in fns.items():
        p = function_props(template, r)
        meta = r.get("Metadata") or {}
        if p.get("Runtime") != RUNTIME:
            out.append(Violation("runtime", name, f"Runtime is {p.get('Runtime')!r}, expected {RUNTIME!r}"))
        if p.get("Architectures") != ARCHITECTURES:
            out.append(Violation("architecture", name, f"Architectures is {p.get('Architectures')!r}, expected {ARCHITECTURES!r}"))
        if p.get("Handler") != HANDLER:
            out.append(Violation("handler", name, f"Handler is {p.get('Handler')!r}, expected {HANDLER!r}"))
        if meta.get("BuildMethod") != BUILD_METHOD:
            out.append(Violation("build", name, f"Metadata.BuildMethod is {meta.get('BuildMethod')!r}, expected {BUILD_METHOD!r}"))
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if binary not in BINARIES:
            out.append(Violation("build", name, f"Metadata.BuildProperties.Binary is {binary!r}, expected one of {sorted(BINARIES)}"))
        else:
            binaries.append(binary)
        if p.get("CodeUri") != ".":
            out.append(Violation("build", name, f"CodeUri is {p.get('CodeUri')!r}: cargo-lambda needs the workspace root '.'"))
        if p.get("PackageType", "Zip") != "Zip":
            out.append(Violation("build", name, "PackageType must be Zip"))
        logging = p.get("LoggingConfig") or {}
        if logging.get("LogFormat") != "JSON":
            out.append(Violation("logging", name, f"LoggingConfig.LogFormat is {logging.get('LogFormat')!r}, expected 'JSON'"))
        memory = as_int(p.get("MemorySize"))
        if memory is None or not 128 <= memory <= 10240:
            out.append(Violation("memory", name, f"MemorySize {p.get('MemorySize')!r} must be set explicitly, 128..10240 MB"))
        timeout = as_int(p.get("Timeout"))
        if timeout is None or not 1 <= timeout <= 900:
            out.append(Violation("timeout", name, f"Timeout {p.get('Timeout')!r} must be set explicitly, 1..900 s"))
    if sorted(binaries) != sorted(BINARIES):
        out.append(Violation("functions", "Resources", f"expected one function per binary {sorted(BINARIES)}, found {sorted(binaries)}"))
    return out


def _budget_ms(variables: dict) -> int:
    return as_int(variables.get("UPSTREAM_BUDGET_MS")) or DEFAULT_UPSTREAM_BUDGET_MS


def check_connect_timeouts(template: dict, name: str, r: dict) -> list[Violation]:
    out = []
    p = function_props(template, r)
    timeout = as_int(p.get("Timeout"))
    if timeout is None:
        return out  # reported by check_functions
    if timeout >= API_GATEWAY_LIMIT_S:
        out.append(Violation("api-timeout", name, f"Timeout {timeout} s must be below API Gateway's {API_GATEWAY_LIMIT_S} s integration limit"))
    variables = env(p)
    budget = _budget_ms(variables)
    if budget + RESPONSE_MARGIN_MS > timeout * 1000:
        out.append(Violation("api-timeout", name, f"UPSTREAM_BUDGET_MS {budget} + {RESPONSE_MARGIN_MS} ms margin does not fit in Timeout {timeout} s"))
    http_timeout = as_int(variables.get("HTTP_TIMEOUT_MS")) or DEFAULT_HTTP_TIMEOUT_MS
    if http_timeout > budget:
        out.append(Violation("api-timeout", name, f"HTTP_TIMEOUT_MS {http_timeout} exceeds UPSTREAM_BUDGET_MS {budget}"))
    return out


def check_connect_queue(template: dict, name: str, r: dict) -> list[Violation]:
    out = []
    p = function_props(template, r)
    timeout = as_int(p.get("Timeout")) or 0
    for event_name in events(p, "SQS"):
        out.append(
            Violation(
                "queue",
                f"{name}.Events.{event_name}",
                "a SAM SQS event attaches AWSLambdaSQSQueueExecutionRole (receive/delete on every queue): "
                "declare an AWS::Lambda::EventSourceMapping and a statement scoped to the queue instead",
            )
        )
    mappings = event_source_mappings(template, name)
    if len(mappings) != 1:
        return out + [Violation("queue", name, f"connect needs exactly one AWS::Lambda::EventSourceMapping, found {len(mappings)}")]
    where, mapping = next(iter(mappings.items()))
    ep = props(mapping)
    if ep.get("Enabled", True) is not True:
        out.append(Violation("queue", where, "Enabled must be true (or absent): a disabled mapping leaves the queue undrained"))
    if ep.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
        out.append(Violation("batch-failures", where, f"FunctionResponseTypes is {ep.get('FunctionResponseTypes')!r}, expected exactly ['ReportBatchItemFailures']"))
    max_conc = as_int((ep.get("ScalingConfig") or {}).get("MaximumConcurrency"))
    if max_conc is None or not 2 <= max_conc <= 1000:
        out.append(Violation("max-concurrency", where, f"ScalingConfig.MaximumConcurrency must be set (2..1000), got {max_conc!r}"))
    batch = as_int(ep.get("BatchSize", 10))
    if batch is None or not 1 <= batch <= FIFO_MAX_BATCH:
        out.append(Violation("queue", where, f"BatchSize {ep.get('BatchSize')!r} must be 1..{FIFO_MAX_BATCH} for a FIFO queue"))
    elif (as_int(env(p).get("BATCH_CONCURRENCY")) or 8) < batch:
        out.append(Violation("queue", name, "BATCH_CONCURRENCY below BatchSize: part of each batch would wait and get less of the budget"))
    if "MaximumBatchingWindowInSeconds" in ep:
        out.append(Violation("queue", where, "MaximumBatchingWindowInSeconds is not supported on FIFO event sources"))

    arn = getatt(ep.get("EventSourceArn"))
    queue_name = arn[0] if arn and arn[1] == "Arn" else None
    queues = resources(template, "AWS::SQS::Queue")
    if queue_name not in queues:
        return out + [Violation("queue", where, f"EventSourceArn must be !GetAtt Q.Arn of an AWS::SQS::Queue in this template, got {ep.get('EventSourceArn')!r}")]
    out += _check_poll_permission(template, name, p, where, mapping, queue_name)
    q = props(queues[queue_name])
    if q.get("FifoQueue") is not True:
        out.append(Violation("fifo", queue_name, "FifoQueue must be true"))
    if q.get("ContentBasedDeduplication") is not True:
        out.append(Violation("fifo", queue_name, "ContentBasedDeduplication must be true"))
    visibility = as_int(q.get("VisibilityTimeout", 30))
    if visibility is None or visibility < VISIBILITY_FACTOR * timeout:
        out.append(Violation("visibility", queue_name, f"VisibilityTimeout {q.get('VisibilityTimeout', 30)!r} < {VISIBILITY_FACTOR} x connect Timeout {timeout} = {VISIBILITY_FACTOR * timeout}"))

    redrive = q.get("RedrivePolicy") or {}
    dlq_name = target(redrive.get("deadLetterTargetArn"))
    if not redrive or dlq_name not in queues:
        return out + [Violation("dlq", queue_name, "RedrivePolicy.deadLetterTargetArn must point at a dead-letter AWS::SQS::Queue in this template")]
    receives = as_int(redrive.get("maxReceiveCount"))
    if receives is None or receives < MIN_MAX_RECEIVE_COUNT:
        out.append(Violation("dlq", queue_name, f"maxReceiveCount {redrive.get('maxReceiveCount')!r} < {MIN_MAX_RECEIVE_COUNT}"))
    dlq = props(queues[dlq_name])
    if dlq.get("FifoQueue") is not True:
        out.append(Violation("fifo", dlq_name, "the dead-letter queue of a FIFO queue must be FIFO"))
    retention = as_int(q.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_S)) or 0
    dlq_retention = as_int(dlq.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_S)) or 0
    if dlq_retention <= retention:
        out.append(Violation("dlq", dlq_name, f"MessageRetentionPeriod {dlq_retention} must be longer than the queue's {retention}"))
    if not _has_depth_alarm(template, dlq_name):
        out.append(Violation("alarm", dlq_name, "no CloudWatch alarm on the DLQ's ApproximateNumberOfMessagesVisible"))
    return out


def _check_poll_permission(template: dict, fname: str, p: dict, where: str, mapping: dict, queue: str) -> list[Violation]:
    """The function's own statements let the poller read `queue`, and the mapping waits for them.

    Lambda validates the role when the mapping is created: a mapping created before the role
    holds the statement fails the first deploy."""
    out = []
    granted: set[str] = set()
    for _, st in statements(p.get("Policies")):
        if st is None or st.get("Effect") != "Allow":
            continue
        if any(getatt(x) == (queue, "Arn") for x in as_list(st.get("Resource"))):
            granted |= {a for a in actions_of(st) if a in POLL_ACTIONS}
    missing = POLL_ACTIONS - granted
    if missing:
        out.append(Violation("queue-permissions", fname, f"no statement grants {sorted(missing)} on !GetAtt {queue}.Arn: the mapping {where} cannot poll"))
    if p.get("Role"):
        role = target(p.get("Role"))
        wanted = {role} if role else set()
    else:
        wanted = {f"{fname}Role"}  # the role SAM generates, which carries the function's Policies
    if not wanted & set(depends_on(mapping)):
        out.append(
            Violation(
                "esm-order",
                where,
                f"DependsOn must name {sorted(wanted)}: Lambda checks at creation that the role may read the queue",
            )
        )
    return out


def _has_depth_alarm(template: dict, queue_name: str) -> bool:
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        a = props(alarm)
        if a.get("Namespace") != "AWS/SQS" or a.get("MetricName") != "ApproximateNumberOfMessagesVisible":
            continue
        dims = {d.get("Name"): d.get("Value") for d in as_list(a.get("Dimensions")) if isinstance(d, dict)}
        if getatt(dims.get("QueueName")) != (queue_name, "QueueName"):
            continue
        threshold, op = a.get("Threshold"), a.get("ComparisonOperator")
        fires_on_one = (op == "GreaterThanThreshold" and threshold is not None and float(threshold) < 1) or (
            op == "GreaterThanOrEqualToThreshold" and threshold is not None and float(threshold) <= 1
        )
        if fires_on_one:
            return True
    return False


def check_verify(template: dict, name: str, r: dict, connect: tuple[str, dict] | None) -> list[Violation]:
    out = []
    p = function_props(template, r)
    variables = env(p)
    if _budget_ms(variables) + RESPONSE_MARGIN_MS > API_GATEWAY_LIMIT_S * 1000:
        out.append(Violation("api-timeout", name, "verify's UPSTREAM_BUDGET_MS must leave GET /connections/{id} inside API Gateway's 30 s"))

    schedules = events(p, "ScheduleV2")
    if len(schedules) != 1:
        out.append(Violation("schedule", name, f"verify needs exactly one ScheduleV2 event, found {len(schedules)}"))
    for event_name, event in schedules.items():
        where = f"{name}.Events.{event_name}"
        ep = event.get("Properties") or {}
        expr = parameter(template, ep.get("ScheduleExpression"))
        if not expr:
            out.append(Violation("schedule", where, "ScheduleExpression must be !Ref of a parameter"))
        elif expr[1].get("Default") != "rate(1 hour)":
            out.append(Violation("schedule", where, f"the schedule parameter's default is {expr[1].get('Default')!r}, expected 'rate(1 hour)'"))
        try:
            payload = json.loads(ep.get("Input")) if isinstance(ep.get("Input"), str) else None
        except ValueError:
            payload = None
        if payload != SCHEDULER_INPUT:
            out.append(Violation("schedule", where, f"Input must be the JSON string {json.dumps(SCHEDULER_INPUT, separators=(',', ':'))}"))
        retry = ep.get("RetryPolicy") or {}
        if as_int(retry.get("MaximumRetryAttempts")) is None or as_int(retry.get("MaximumEventAgeInSeconds")) is None:
            out.append(Violation("schedule-retry", where, "RetryPolicy needs MaximumRetryAttempts and MaximumEventAgeInSeconds"))
        dlc = ep.get("DeadLetterConfig") or {}
        dlq_name = target(dlc.get("Arn"))
        queues = resources(template, "AWS::SQS::Queue")
        if dlc.get("Type") != "SQS" and dlq_name not in queues:
            out.append(Violation("schedule-dlq", where, "DeadLetterConfig must name an SQS queue (Arn: !GetAtt Q.Arn, or Type: SQS)"))
        elif dlq_name in queues:
            if props(queues[dlq_name]).get("FifoQueue") is True:
                out.append(Violation("schedule-dlq", dlq_name, "EventBridge Scheduler cannot write to a FIFO dead-letter queue"))
            if not _has_depth_alarm(template, dlq_name):
                out.append(Violation("alarm", dlq_name, "no CloudWatch alarm on the schedule DLQ's ApproximateNumberOfMessagesVisible"))

    checks = {
        "AUTO_REPAIR": ("AutoRepair", "true"),
        "VERIFY_CONCURRENCY": ("VerifyConcurrency", 16),
    }
    for var, (param, default) in checks.items():
        ref = parameter(template, variables.get(var))
        if not ref or ref[0] != param:
            out.append(Violation("verify-env", name, f"{var} must be !Ref {param}"))
        elif ref[1].get("Default") != default and str(ref[1].get("Default")) != str(default):
            out.append(Violation("verify-env", name, f"parameter {param} must default to {default!r}"))
    queue_url = variables.get("CONNECT_QUEUE_URL")
    if connect is not None:
        if not (isinstance(queue_url, dict) and "Ref" in queue_url and target(queue_url) == connect_queue(template)):
            out.append(Violation("verify-env", name, "CONNECT_QUEUE_URL must be !Ref of connect's queue (its URL)"))
    return out


def _rates_refused_for_fan_out(template: dict) -> set[str]:
    """Values of LeafFleetMaxRps the template's Rules refuse when VerifyFanOut=Enabled: an
    assertion `!Not [!Contains [[values], !Ref LeafFleetMaxRps]]` under that RuleCondition."""
    refused: set[str] = set()
    when = {"Fn::Equals": [{"Ref": FAN_OUT_PARAMETER}, "Enabled"]}
    for rule in (template.get("Rules") or {}).values():
        if not isinstance(rule, dict) or rule.get("RuleCondition") != when:
            continue
        for assertion in as_list(rule.get("Assertions")):
            test = assertion.get("Assert") if isinstance(assertion, dict) else None
            inner = test.get("Fn::Not") if isinstance(test, dict) else None
            contains = inner[0].get("Fn::Contains") if isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], dict) else None
            if isinstance(contains, list) and len(contains) == 2 and contains[1] == {"Ref": RATE_PARAMETER}:
                refused |= {str(v) for v in as_list(contains[0])}
    return refused


def _find_in_map(value: Any, key: str) -> bool:
    """Whether `value` is `!FindInMap [LeafRates, !Ref LeafFleetMaxRps, key]`."""
    return value == {"Fn::FindInMap": [RATE_MAPPING, {"Ref": RATE_PARAMETER}, key]}


def check_rate_table(template: dict, timeout: int) -> list[Violation]:
    """The LeafRates rows: one per LeafFleetMaxRps value, MaximumConcurrency within what Lambda
    accepts, LeafMaxRps = floor(rate / MaximumConcurrency) so the processes together stay within
    the rate, and a full batch (10 messages of 100 growers, 2 Leaf requests each) at the
    per-process rate fits in half of verify's timeout, unless Rules refuse fan-out at that rate."""
    out = []
    param = (template.get("Parameters") or {}).get(RATE_PARAMETER)
    table = (template.get("Mappings") or {}).get(RATE_MAPPING)
    if not isinstance(param, dict) or not isinstance(table, dict):
        return [Violation("fan-out-rate", "Parameters", f"needs the parameter {RATE_PARAMETER} and the mapping {RATE_MAPPING}")]
    allowed = [str(v) for v in as_list(param.get("AllowedValues"))]
    if sorted(allowed) != sorted(map(str, table)):
        out.append(Violation("fan-out-rate", RATE_PARAMETER, f"AllowedValues {allowed} must be exactly the {RATE_MAPPING} keys {sorted(map(str, table))}"))
    refused = _rates_refused_for_fan_out(template)
    if str(param.get("Default")) != RATE_DEFAULT or RATE_DEFAULT in refused:
        out.append(Violation("fan-out-rate", RATE_PARAMETER, f"Default must be {RATE_DEFAULT}, a rate fan-out accepts"))
    batch_requests = VERIFY_BATCH_SIZE * GROWERS_PER_MESSAGE * LEAF_REQUESTS_PER_CHECK
    for key, row in table.items():
        where = f"{RATE_MAPPING}.{key}"
        rate = as_int(str(key))
        row = row if isinstance(row, dict) else {}
        processes, per_process = as_int(row.get("MaximumConcurrency")), as_int(row.get("LeafMaxRps"))
        if rate is None or rate < 1:
            out.append(Violation("fan-out-rate", where, "the key must be the fleet-wide rate, a whole number of requests/s"))
            continue
        if processes is None or not MAX_CONCURRENCY_RANGE[0] <= processes <= MAX_CONCURRENCY_RANGE[1]:
            out.append(Violation("fan-out-rate", where, f"MaximumConcurrency {row.get('MaximumConcurrency')!r} must be {MAX_CONCURRENCY_RANGE[0]}..{MAX_CONCURRENCY_RANGE[1]}"))
            continue
        if per_process is None or not LEAF_MAX_RPS_RANGE[0] <= per_process <= LEAF_MAX_RPS_RANGE[1]:
            out.append(Violation("fan-out-rate", where, f"LeafMaxRps {row.get('LeafMaxRps')!r} must be a whole number {LEAF_MAX_RPS_RANGE[0]}..{LEAF_MAX_RPS_RANGE[1]}"))
            continue
        if per_process * processes > rate:
            out.append(Violation("fan-out-rate", where, f"{processes} processes x {per_process} requests/s = {processes * per_process} exceeds the fleet-wide {rate}"))
        if per_process != rate // processes:
            out.append(Violation("fan-out-rate", where, f"LeafMaxRps must be floor({rate} / {processes}) = {rate // processes}, got {per_process}"))
        if str(key) not in refused and batch_requests > per_process * timeout * BATCH_TIME_SHARE:
            out.append(
                Violation(
                    "fan-out-rate",
                    where,
                    f"a full batch ({batch_requests} Leaf requests) at {per_process} requests/s takes "
                    f"{batch_requests / per_process:.0f} s, more than {BATCH_TIME_SHARE:.0%} of verify's {timeout} s: "
                    f"raise LeafMaxRps or refuse fan-out at {key} (Rules)",
                )
            )
    return out


def check_verify_fan_out(template: dict, name: str, r: dict) -> list[Violation]:
    """Fan-out (VerifyFanOut=Enabled): VERIFY_QUEUE_URL names a standard queue that exists only
    with fan-out, with a DLQ and an alarm on it, visibility >= 6 x verify's timeout, read by one
    event source mapping with ReportBatchItemFailures and the LeafRates MaximumConcurrency;
    LEAF_MAX_RPS is the LeafRates share with fan-out and the whole rate without; verify's
    statements on the queue exist only with fan-out."""
    out = []
    p = function_props(template, r)
    variables = env(p)
    timeout = as_int(p.get("Timeout")) or 0
    params = template.get("Parameters") or {}
    fan_out = params.get(FAN_OUT_PARAMETER) or {}
    if set(as_list(fan_out.get("AllowedValues"))) != {"Enabled", "Disabled"} or fan_out.get("Default") != "Enabled":
        out.append(Violation("fan-out", FAN_OUT_PARAMETER, "AllowedValues must be [Enabled, Disabled], default Enabled"))
    if (template.get("Conditions") or {}).get(FAN_OUT_CONDITION) != {"Fn::Equals": [{"Ref": FAN_OUT_PARAMETER}, "Enabled"]}:
        out.append(Violation("fan-out", "Conditions", f"{FAN_OUT_CONDITION} must be !Equals [!Ref {FAN_OUT_PARAMETER}, Enabled]"))
    out += check_rate_table(template, timeout)

    rps = variables.get("LEAF_MAX_RPS")
    if rps != {"Fn::If": [FAN_OUT_CONDITION, {"Fn::FindInMap": [RATE_MAPPING, {"Ref": RATE_PARAMETER}, "LeafMaxRps"]}, {"Ref": RATE_PARAMETER}]}:
        out.append(Violation("verify-env", name, f"LEAF_MAX_RPS must be !If [{FAN_OUT_CONDITION}, !FindInMap [{RATE_MAPPING}, !Ref {RATE_PARAMETER}, LeafMaxRps], !Ref {RATE_PARAMETER}]"))
    queue_name = verify_queue(template)
    queues = resources(template, "AWS::SQS::Queue")
    url = variables.get("VERIFY_QUEUE_URL")
    if queue_name not in queues or url != {"Fn::If": [FAN_OUT_CONDITION, {"Ref": queue_name}, {"Ref": "AWS::NoValue"}]}:
        return out + [Violation("verify-env", name, f"VERIFY_QUEUE_URL must be !If [{FAN_OUT_CONDITION}, !Ref <a queue of this template>, !Ref AWS::NoValue], got {url!r}")]

    # The queue and its DLQ.
    q = props(queues[queue_name])
    if queues[queue_name].get("Condition") != FAN_OUT_CONDITION:
        out.append(Violation("fan-out", queue_name, f"the verify queue must have Condition: {FAN_OUT_CONDITION}"))
    queue_id = q.get("QueueName")
    fifo_name = str(queue_id.get("Fn::Sub", "") if isinstance(queue_id, dict) else queue_id).endswith(".fifo")
    if q.get("FifoQueue") is True or "ContentBasedDeduplication" in q or fifo_name:
        out.append(Violation("verify-queue", queue_name, "the verify queue must be a standard queue (the code refuses a .fifo URL)"))
    visibility = as_int(q.get("VisibilityTimeout", 30))
    if visibility is None or visibility < VISIBILITY_FACTOR * timeout:
        out.append(Violation("visibility", queue_name, f"VisibilityTimeout {q.get('VisibilityTimeout', 30)!r} < {VISIBILITY_FACTOR} x verify Timeout {timeout} = {VISIBILITY_FACTOR * timeout}"))
    redrive = q.get("RedrivePolicy") or {}
    dlq_name = target(redrive.get("deadLetterTargetArn"))
    if not redrive or dlq_name not in queues:
        out.append(Violation("dlq", queue_name, "RedrivePolicy.deadLetterTargetArn must point at a dead-letter AWS::SQS::Queue in this template"))
    else:
        receives = as_int(redrive.get("maxReceiveCount"))
        if receives is None or receives < MIN_MAX_RECEIVE_COUNT:
            out.append(Violation("dlq", queue_name, f"maxReceiveCount {redrive.get('maxReceiveCount')!r} < {MIN_MAX_RECEIVE_COUNT}"))
        retention = as_int(q.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_S)) or 0
        # A message must live long enough to be received maxReceiveCount times, or it expires
        # instead of reaching the DLQ.
        if receives and visibility and retention <= receives * visibility:
            out.append(Violation("dlq", queue_name, f"MessageRetentionPeriod {retention} must exceed {receives} receives x {visibility} s visibility"))
        dlq = queues[dlq_name]
        if dlq.get("Condition") != FAN_OUT_CONDITION:
            out.append(Violation("fan-out", dlq_name, f"the verify DLQ must have Condition: {FAN_OUT_CONDITION}"))
        if props(dlq).get("FifoQueue") is True:
            out.append(Violation("verify-queue", dlq_name, "the dead-letter queue of a standard queue must be standard"))
        dlq_retention = as_int(props(dlq).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION_S)) or 0
        if dlq_retention <= retention:
            out.append(Violation("dlq", dlq_name, f"MessageRetentionPeriod {dlq_retention} must be longer than the queue's {retention}"))
        if not _has_depth_alarm(template, dlq_name):
            out.append(Violation("alarm", dlq_name, "no CloudWatch alarm on the verify DLQ's ApproximateNumberOfMessagesVisible"))

    # The mapping.
    mappings = {
        n: m for n, m in event_source_mappings(template, name).items() if getatt(props(m).get("EventSourceArn")) == (queue_name, "Arn")
    }
    others = set(event_source_mappings(template, name)) - set(mappings)
    if others:
        out.append(Violation("verify-queue", name, f"verify reads only its own queue: mappings {sorted(others)}"))
    if len(mappings) != 1:
        return out + [Violation("verify-queue", name, f"verify needs exactly one AWS::Lambda::EventSourceMapping on {queue_name}, found {len(mappings)}")]
    (where, mapping), = mappings.items()
    ep = props(mapping)
    if mapping.get("Condition") != FAN_OUT_CONDITION:
        out.append(Violation("fan-out", where, f"the mapping must have Condition: {FAN_OUT_CONDITION}"))
    if ep.get("Enabled", True) is not True:
        out.append(Violation("verify-queue", where, "Enabled must be true (or absent): a disabled mapping leaves the queue undrained"))
    if ep.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
        out.append(Violation("batch-failures", where, f"FunctionResponseTypes is {ep.get('FunctionResponseTypes')!r}, expected exactly ['ReportBatchItemFailures']"))
    if as_int(ep.get("BatchSize")) != VERIFY_BATCH_SIZE:
        out.append(Violation("verify-queue", where, f"BatchSize {ep.get('BatchSize')!r} must be {VERIFY_BATCH_SIZE} (the LeafRates rows assume {VERIFY_BATCH_SIZE} messages a batch)"))
    if not _find_in_map((ep.get("ScalingConfig") or {}).get("MaximumConcurrency"), "MaximumConcurrency"):
        out.append(Violation("max-concurrency", where, f"ScalingConfig.MaximumConcurrency must be !FindInMap [{RATE_MAPPING}, !Ref {RATE_PARAMETER}, MaximumConcurrency]"))
    out += _check_poll_permission(template, name, p, where, mapping, queue_name)

    # Verify's statements on its queue exist only with fan-out (the queue does not exist without).
    for under, _, st in guarded_statements(p.get("Policies")):
        if st is None or not any(target(x) in (queue_name, dlq_name) for x in as_list(st.get("Resource"))):
            continue
        if (FAN_OUT_CONDITION, True) not in under:
            out.append(Violation("fan-out", name, f"statement {st.get('Sid')!r} names {queue_name} outside !If [{FAN_OUT_CONDITION}, ...]"))
    return out


def check_unchecked_alarm(template: dict) -> list[Violation]:
    """An alarm in both modes on verify's `Unchecked` (growers listed but not checked in time),
    firing on one."""
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        a = props(alarm)
        dims = {d.get("Name"): d.get("Value") for d in as_list(a.get("Dimensions")) if isinstance(d, dict)}
        if (a.get("Namespace"), a.get("MetricName"), dims) != ("StaraConnect", UNCHECKED_METRIC, {"Function": "verify"}):
            continue
        if "Condition" not in alarm and a.get("ComparisonOperator") == "GreaterThanThreshold" and float(a.get("Threshold", 1)) == 0:
            return []
    return [Violation("unchecked-alarm", "Resources", f"no unconditional alarm on StaraConnect {UNCHECKED_METRIC} (Function=verify) > 0")]


# The one route open to the internet, and the condition under which it may be: Leaf's alerts
# webhook, whose requests the verify function authenticates by their HMAC signature.
SIGNED_ROUTES = {"POST /leaf/alerts": "AlertsEnabled"}


def check_routes(template: dict, fns: dict[str, tuple[str, dict]]) -> list[Violation]:
    out = []
    fn_binary = {logical: binary for binary, (logical, _) in fns.items()}
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    authorizers = resources(template, "AWS::ApiGatewayV2::Authorizer")
    seen: dict[str, str | None] = {}

    for name, integ in integrations.items():
        ip = props(integ)
        if as_int(ip.get("TimeoutInMillis", 30000)) is None or as_int(ip.get("TimeoutInMillis", 30000)) > API_GATEWAY_LIMIT_S * 1000:
            out.append(Violation("api-timeout", name, "TimeoutInMillis must be at most 30000"))
        if ip.get("IntegrationType") == "AWS_PROXY" and ip.get("PayloadFormatVersion") != "2.0":
            out.append(Violation("routes", name, "the handlers read payload format 2.0: PayloadFormatVersion must be '2.0'"))

    for name, route in resources(template, "AWS::ApiGatewayV2::Route").items():
        rp = props(route)
        key = rp.get("RouteKey")
        for case in condition_cases(template):
            mode = ", ".join(f"{c}={v}" for c, v in case.items()) or "always"
            rc = resolve(rp, case)
            auth_type = rc.get("AuthorizationType")
            if auth_type == "NONE" and key in SIGNED_ROUTES and case.get(SIGNED_ROUTES[key], False):
                # Leaf's webhook: it can neither sign SigV4 nor send a JWT; verify checks the HMAC.
                continue
            if auth_type not in AUTHORIZED_TYPES:
                out.append(Violation("route-auth", name, f"{key}: AuthorizationType {auth_type!r} leaves the route open ({mode})"))
            elif auth_type in ("JWT", "CUSTOM"):
                authorizer = target(rc.get("AuthorizerId"))
                if authorizer not in authorizers:
                    out.append(Violation("route-auth", name, f"{key}: {auth_type} without an AuthorizerId of this template ({mode})"))
                    continue
                condition = authorizers[authorizer].get("Condition")
                if condition and not case.get(condition, False):
                    out.append(Violation("route-auth", name, f"{key}: its authorizer {authorizer} does not exist when {mode}"))
                if auth_type == "JWT" and props(authorizers[authorizer]).get("AuthorizerType") != "JWT":
                    out.append(Violation("route-auth", name, f"{key}: JWT route with a non-JWT authorizer"))
        # Which function serves the route.
        tgt = rp.get("Target")
        integ_name = None
        if isinstance(tgt, dict) and "Fn::Sub" in tgt and isinstance(tgt["Fn::Sub"], str) and tgt["Fn::Sub"].startswith("integrations/${"):
            integ_name = tgt["Fn::Sub"][len("integrations/${") : -1]
        elif isinstance(tgt, dict) and "Fn::Join" in tgt:
            parts = tgt["Fn::Join"][1] if isinstance(tgt["Fn::Join"], list) and len(tgt["Fn::Join"]) == 2 else []
            integ_name = next((target(x) for x in parts if target(x)), None)
        fn = target(props(integrations[integ_name]).get("IntegrationUri")) if integ_name in integrations else None
        seen[key] = fn_binary.get(fn)

    for name, auth in authorizers.items():
        ap = props(auth)
        if ap.get("AuthorizerType") == "JWT":
            jwt = ap.get("JwtConfiguration") or {}
            if target(jwt.get("Issuer")) != "JwtIssuer" or [target(a) for a in as_list(jwt.get("Audience"))] != ["JwtAudience"]:
                out.append(Violation("route-auth", name, "JWT issuer and audience must be the JwtIssuer and JwtAudience parameters"))

    # Routes declared through SAM events (HttpApi / Api) must be authorized too.
    apis = resources(template, "AWS::Serverless::HttpApi", "AWS::Serverless::Api")
    for fname, r in resources(template, "AWS::Serverless::Function").items():
        for ename, event in events(function_props(template, r), "HttpApi", "Api").items():
            ep = event.get("Properties") or {}
            key = f"{str(ep.get('Method', 'ANY')).upper()} {ep.get('Path')}"
            method_auth = (ep.get("Auth") or {}).get("Authorizer")
            api_name = target(ep.get("ApiId") or ep.get("RestApiId"))
            default = ((props(apis[api_name]).get("Auth") or {}).get("DefaultAuthorizer")) if api_name in apis else None
            effective = method_auth if method_auth is not None else default
            if effective in (None, "NONE") or not isinstance(effective, str):
                out.append(Violation("route-auth", f"{fname}.Events.{ename}", f"{key}: no authorizer on the event and no DefaultAuthorizer on its API"))
            seen[key] = fn_binary.get(fname)

    for key, binary in ROUTES.items():
        if key not in seen:
            out.append(Violation("routes", "HTTP API", f"route {key!r} is missing"))
        elif seen[key] != binary:
            out.append(Violation("routes", "HTTP API", f"route {key!r} must be served by {binary}, not {seen[key]!r}"))

    if resources(template, "AWS::ApiGatewayV2::Route"):
        stages = [props(s) for s in resources(template, "AWS::ApiGatewayV2::Stage").values()]
        throttled = [
            s
            for s in stages
            if (as_int((s.get("DefaultRouteSettings") or {}).get("ThrottlingBurstLimit")) or 0) > 0
            and float((s.get("DefaultRouteSettings") or {}).get("ThrottlingRateLimit") or 0) > 0
        ]
        if not throttled:
            out.append(Violation("throttling", "HTTP API", "no stage with DefaultRouteSettings ThrottlingRateLimit and ThrottlingBurstLimit"))
        for name, perm in resources(template, "AWS::Lambda::Permission").items():
            pp = props(perm)
            if pp.get("Principal") == "apigateway.amazonaws.com" and not pp.get("SourceArn"):
                out.append(Violation("routes", name, "an API Gateway invoke permission without SourceArn lets any API invoke the function"))
    return out


def _grower_prefix_arn(resource: Any) -> bool:
    if not (isinstance(resource, dict) and "Fn::Sub" in resource):
        return False
    sub = resource["Fn::Sub"]
    text = sub[0] if isinstance(sub, list) and sub else sub
    return isinstance(text, str) and text.endswith(":secret:${StaraSecretPrefix}*") and text.startswith("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}")


def check_iam(template: dict, fns: dict[str, tuple[str, dict]]) -> list[Violation]:
    out = []
    for name in resources(template, "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User"):
        out.append(Violation("iam", name, "IAM resources are generated by SAM from each function's Policies; declare none by hand"))
    binary_of = {logical: binary for binary, (logical, _) in fns.items()}
    queues = {"connect": connect_queue(template), "verify": verify_queue(template)}

    for fname, r in resources(template, "AWS::Serverless::Function").items():
        p = function_props(template, r)
        binary = binary_of.get(fname)
        allowed = ALLOWED_ACTIONS.get(binary, set())
        if p.get("Role"):
            out.append(Violation("iam", fname, "Role is set: the checked Policies would not apply"))
        for entry, st in statements(p.get("Policies")):
            if st is None:
                out.append(Violation("iam", fname, f"policy {entry!r} is not an inline statement: only inline, scoped statements are allowed"))
                continue
            if st.get("Effect") != "Allow":
                continue
            if "NotAction" in st or "NotResource" in st:
                out.append(Violation("iam", fname, "NotAction / NotResource grant more than they name"))
            res = as_list(st.get("Resource"))
            for action in actions_of(st):
                if "*" in action or action not in allowed:
                    out.append(Violation("iam", fname, f"action {action!r} is not allowed for {binary} (allowed: {sorted(allowed)})"))
                    continue
                if action == "secretsmanager:GetSecretValue":
                    for x in res:
                        leaf = parameter(template, x) is not None and parameter(template, x)[0] == "LeafSecretArn"
                        # verify reads the alerts webhook's key; with alerts off, the Leaf secret again.
                        webhook = binary == "verify" and x == {
                            "Fn::If": ["AlertsEnabled", {"Ref": "LeafWebhookSecret"}, {"Ref": "AWS::NoValue"}]
                        }
                        if webhook:
                            continue
                        if x == "*" or (isinstance(x, str) and x.endswith(":*")):
                            out.append(Violation("secrets-scope", fname, f"GetSecretValue on {x!r}"))
                        elif _grower_prefix_arn(x):
                            if binary not in GROWER_SECRET_READERS:
                                out.append(Violation("secrets-scope", fname, f"{binary} never reads a grower's login: no GetSecretValue on the grower prefix"))
                        elif not leaf:
                            out.append(Violation("secrets-scope", fname, f"GetSecretValue on {x!r}: only the grower prefix and the Leaf secret ARN"))
                    if not res:
                        out.append(Violation("secrets-scope", fname, "GetSecretValue without Resource"))
                elif action in GROWER_STATE_ACTIONS:
                    if not res or not all(_grower_prefix_arn(x) for x in res):
                        out.append(Violation("secrets-scope", fname, f"{action} only on the grower prefix, got {res!r}"))
                elif action == "secretsmanager:ListSecrets":
                    if binary != "verify":
                        out.append(Violation("iam", fname, "ListSecrets is for verify only"))
                elif action.startswith("sqs:"):
                    scope = SQS_SCOPE.get((binary, action), set())
                    arns = {(queues[q], "Arn") for q in scope if queues[q]}
                    if len(res) != 1 or getatt(res[0]) not in arns:
                        names = " or ".join(f"{q} queue's" for q in sorted(scope)) or "no queue's"
                        out.append(Violation("sqs-scope", fname, f"{action} must be on the {names} ARN only, one queue per statement, got {res!r}"))
    return out


def check_jwt_scopes(template: dict) -> list[Violation]:
    """In JWT mode each route needs exactly the scope of its method (SCOPE_OF_METHOD), given by a
    parameter; in IAM mode no route carries scopes (API Gateway evaluates them for JWT only)."""
    out = []
    params = template.get("Parameters") or {}
    for name, default in SCOPE_DEFAULTS.items():
        sp = params.get(name)
        if not isinstance(sp, dict):
            out.append(Violation("jwt-scopes", "Parameters", f"missing the scope parameter {name}"))
            continue
        if sp.get("Default") != default:
            out.append(Violation("jwt-scopes", name, f"Default is {sp.get('Default')!r}, expected {default!r}"))
        pattern = sp.get("AllowedPattern")
        if not isinstance(pattern, str) or re.fullmatch(pattern, "") or re.fullmatch(pattern, "a b") or not re.fullmatch(pattern, default):
            out.append(Violation("jwt-scopes", name, "AllowedPattern must accept one scope token and refuse an empty value or a space"))
    defaults = [(params.get(n) or {}).get("Default") for n in SCOPE_DEFAULTS]
    if len(set(map(str, defaults))) != len(defaults):
        out.append(Violation("jwt-scopes", "Parameters", "the write and read scopes must differ, or a read-only client could write"))

    for name, route in resources(template, "AWS::ApiGatewayV2::Route").items():
        rp = props(route)
        key = rp.get("RouteKey")
        method = key.split(" ", 1)[0].upper() if isinstance(key, str) else None
        for case in condition_cases(template):
            mode = ", ".join(f"{c}={v}" for c, v in case.items()) or "always"
            rc = resolve(rp, case)
            scopes = rc.get("AuthorizationScopes")
            if rc.get("AuthorizationType") == "JWT":
                want = SCOPE_OF_METHOD.get(method)
                got = [target(s) if isinstance(s, dict) and "Ref" in s else s for s in as_list(scopes)]
                if want is None:
                    out.append(Violation("jwt-scopes", name, f"{key}: a JWT route must have one method of {sorted(SCOPE_OF_METHOD)} ({mode})"))
                elif got != [want]:
                    out.append(Violation("jwt-scopes", name, f"{key}: AuthorizationScopes must be exactly [!Ref {want}] ({mode}), got {scopes!r}"))
            elif scopes not in (None, []):
                out.append(Violation("jwt-scopes", name, f"{key}: AuthorizationScopes on a {rc.get('AuthorizationType')} route ({mode}): scopes apply to JWT only"))
    return out


# ------------------------------------------------------------------------------------------------
# Least privilege: no Allow of ours on Resource "*" but the listed exceptions; AWS managed
# policies only from the allow-list.
# ------------------------------------------------------------------------------------------------


def _candidates(value: Any) -> list:
    """Every value `value` can take: both branches of each Fn::If, AWS::NoValue (and absence) dropped."""
    if value is None:
        return []
    if isinstance(value, dict) and len(value) == 1 and "Fn::If" in value:
        branches = value["Fn::If"]
        if isinstance(branches, list) and len(branches) == 3:
            return _candidates(branches[1]) + _candidates(branches[2])
    if isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return []
    if isinstance(value, list):
        return [c for v in value for c in _candidates(v)]
    return [value]


def _parameter_may_be_wild(template: dict, name: str) -> bool:
    """Whether a deployer could give parameter `name` the value '*' or '' (which turns `prefix*` into `*`)."""
    param = (template.get("Parameters") or {}).get(name)
    if not isinstance(param, dict):
        return False  # a resource or pseudo parameter
    allowed = param.get("AllowedValues")
    if isinstance(allowed, list):
        return any(str(v) in ("*", "") for v in allowed)
    pattern = param.get("AllowedPattern")
    if not isinstance(pattern, str):
        return True
    return bool(re.fullmatch(pattern, "*") or re.fullmatch(pattern, ""))


def _arn_text(template: dict, value: Any) -> str | None:
    """A resource value as text, with each reference replaced by `X` (a fixed name) or, for a
    parameter that could be empty or '*', by '' (the worst case). None if it cannot be told."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    (fn, arg), = value.items()
    if fn == "Ref":
        return "" if isinstance(arg, str) and _parameter_may_be_wild(template, arg) else "X"
    if fn == "Fn::GetAtt":
        return "X"
    if fn == "Fn::Sub":
        text, variables = (arg[0], arg[1] if len(arg) > 1 else {}) if isinstance(arg, list) and arg else (arg, {})
        if not isinstance(text, str):
            return None

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name in (variables or {}):
                v = variables[name]
                return v if isinstance(v, str) else (_arn_text(template, v) or "")
            if "." in name or name.startswith("AWS::"):
                return "X"
            return "" if _parameter_may_be_wild(template, name) else "X"

        return re.sub(r"\$\{([^}!]+)\}", sub, text)
    if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
        parts = [_arn_text(template, x) for x in as_list(arg[1])]
        return None if None in parts else arg[0].join(parts)
    return None


def unscoped(template: dict, value: Any) -> bool:
    """Whether a Resource value grants every resource (of a service): '*', `arn:...:secret:*`,
    `arn:...:table/*`, a `prefix*` whose prefix may be empty, or a value that cannot be told."""
    text = _arn_text(template, value)
    if text is None:
        return True  # fail closed: Fn::ImportValue, Fn::FindInMap, ...
    if text.strip("*") == "":
        return True
    if not text.startswith("arn:"):
        return "*" in text
    parts = text.split(":", 5)
    if len(parts) < 6 or "*" in parts[2]:
        return True
    # Strip the resource type (`secret:`, `table/`, `log-group:`); an S3 ARN has none (it starts
    # with the bucket name).
    rest = parts[5] if parts[2] == "s3" else re.sub(r"^[A-Za-z0-9_.-]+[:/]", "", parts[5], count=1)
    return "*" in rest and rest.strip("*:/") == ""


def _managed_policy_name(value: Any) -> str | None:
    """The name of an AWS managed policy given by name or ARN; None for anything else (a customer
    managed policy, a computed ARN), which cannot be checked here."""
    text = value if isinstance(value, str) else None
    if isinstance(value, dict) and len(value) == 1 and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"].replace("${AWS::Partition}", "aws")
    if isinstance(value, dict) and len(value) == 1 and "Fn::Join" in value:
        j = value["Fn::Join"]
        if isinstance(j, list) and len(j) == 2 and isinstance(j[0], str):
            bits = ["aws" if x == {"Ref": "AWS::Partition"} else x for x in as_list(j[1])]
            text = j[0].join(bits) if all(isinstance(b, str) for b in bits) else None
    if text is None:
        return None
    if text.startswith("arn:"):
        m = re.fullmatch(r"arn:[a-z-]+:iam::aws:policy/(?:[A-Za-z0-9_+=,.@-]+/)*([A-Za-z0-9_+=,.@-]+)", text)
        return m.group(1) if m else None
    return text if re.fullmatch(r"[A-Za-z0-9_+=,.@-]+", text) else None


def _check_managed_policy(where: str, value: Any, tracing: bool, how: str) -> list[Violation]:
    name = _managed_policy_name(value)
    if name is None:
        return [Violation("managed-policy", where, f"{how} {value!r}: not an AWS managed policy by name or ARN, so its statements cannot be checked")]
    if name in ALLOWED_MANAGED_POLICIES or (tracing and name in TRACING_MANAGED_POLICIES):
        return []
    return [Violation("managed-policy", where, f"{how} the AWS managed policy {name!r}, which is not in the allow-list {sorted(ALLOWED_MANAGED_POLICIES)}")]


def _exception(action: str, tracing: bool) -> str | None:
    table = {a.lower(): why for a, why in UNSCOPABLE_ACTIONS.items()}
    if tracing:
        table.update({a.lower(): why for a, why in TRACING_ACTIONS.items()})
    return table.get(action.lower())


def _has_condition_key(st: dict, key: str) -> bool:
    condition = st.get("Condition")
    if not isinstance(condition, dict):
        return False
    return any(isinstance(block, dict) and any(k.lower() == key.lower() for k in block) for block in condition.values())


def check_document(template: dict, where: str, document: Any, tracing: bool = False) -> list[Violation]:
    """Every Allow statement of one policy document: an action on an unscoped resource must be a
    listed exception (with its condition key where one is required)."""
    out = []
    if not isinstance(document, dict):
        return [Violation("wildcard-resource", where, f"policy document {document!r} cannot be read")]
    for st in _candidates(document.get("Statement")):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        if "NotResource" in st:
            out.append(Violation("wildcard-resource", where, f"NotResource in an Allow grants every resource but those named: {st.get('NotResource')!r}"))
            continue
        wide = [r for r in _candidates(st.get("Resource")) if unscoped(template, r)]
        if "Resource" not in st:
            wide = ["(no Resource)"]
        if not wide:
            continue
        if "NotAction" in st:
            out.append(Violation("wildcard-resource", where, f"NotAction on {wide[0]!r} grants every action but those named"))
        for action in _candidates(st.get("Action")):
            if not isinstance(action, str):
                out.append(Violation("wildcard-resource", where, f"action {action!r} on {wide[0]!r} cannot be checked"))
                continue
            why = _exception(action, tracing)
            if why is None:
                allowed = sorted(UNSCOPABLE_ACTIONS) + (sorted(TRACING_ACTIONS) if tracing else [])
                out.append(Violation("wildcard-resource", where, f"{action} on {wide[0]!r}: scope it to the resources it needs (only {allowed} may be unscoped)"))
                continue
            key = REQUIRED_CONDITION_KEYS.get(action.lower())
            if key and not _has_condition_key(st, key):
                out.append(Violation("wildcard-resource", where, f"{action} on {wide[0]!r} needs a {key} condition"))
    return out


def _policy_templates():
    from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())


def _check_sam_policy_entry(template: dict, where: str, entry: Any, tracing: bool) -> list[Violation]:
    """One entry of a SAM `Policies` list: an inline document, a managed policy, or a SAM policy
    template (expanded with SAM's own definitions)."""
    if isinstance(entry, dict) and "Statement" in entry:
        return check_document(template, where, entry, tracing)
    if isinstance(entry, dict) and len(entry) == 1 and not next(iter(entry)).startswith(("Fn::", "Ref")):
        (name, values), = entry.items()
        processor = _policy_templates()
        if not processor.has(name):
            return [Violation("wildcard-resource", where, f"unknown SAM policy template {name!r}: cannot be checked")]
        return check_document(template, f"{where} ({name})", processor.convert(name, values or {}), tracing)
    return _check_managed_policy(where, entry, tracing, "Policies entry")


def _tracing(value: Any) -> bool:
    return any(c == "Active" for c in _candidates(value))


def check_least_privilege(template: dict) -> list[Violation]:
    """No IAM statement of ours grants an action on an unscoped resource unless IAM cannot scope
    it (UNSCOPABLE_ACTIONS; TRACING_ACTIONS for a traced function), and every AWS managed policy
    attached, by us or implicitly by SAM, is in ALLOWED_MANAGED_POLICIES.

    Works on the template as written (SAM functions' Policies, the managed policies SAM will add,
    hand-written IAM resources) and on what the SAM transform generates (roles with
    ManagedPolicyArns and inline Policies)."""
    out = []
    for fname, r in resources(template, "AWS::Serverless::Function").items():
        p = function_props(template, r)
        tracing = _tracing(p.get("Tracing"))
        if not p.get("Role"):
            # What SAM adds to the role it generates (samtranslator: SamFunction._construct_role
            # and the pull event sources).
            out += _check_managed_policy(fname, "AWSLambdaBasicExecutionRole", tracing, "SAM attaches")
            if tracing:
                out += _check_managed_policy(fname, "AWSXrayWriteOnlyAccess", tracing, "Tracing makes SAM attach")
            if p.get("VpcConfig"):
                out += _check_managed_policy(fname, "AWSLambdaVPCAccessExecutionRole", tracing, "VpcConfig makes SAM attach")
            for ename, event in events(p, *SAM_PULL_EVENTS).items():
                policy = SAM_PULL_EVENTS[event["Type"]]
                where = f"{fname}.Events.{ename}"
                if policy:
                    out += _check_managed_policy(where, policy, tracing, f"a SAM {event['Type']} event makes SAM attach")
                else:
                    out.append(Violation("wildcard-resource", where, f"a SAM {event['Type']} event makes SAM write poller statements of its own: declare an AWS::Lambda::EventSourceMapping"))
        for i, entry in enumerate(as_list(p.get("Policies"))):
            out += _check_sam_policy_entry(template, f"{fname}.Policies[{i}]", entry, tracing)

    # Roles (by hand, or generated by the transform) and the functions that use them.
    traced_roles = {
        target(props(f).get("Role"))
        for f in resources(template, "AWS::Lambda::Function").values()
        if _tracing((props(f).get("TracingConfig") or {}).get("Mode"))
    }
    for name, r in resources(template, "AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group").items():
        rp = props(r)
        tracing = name in traced_roles
        for arn in _candidates(rp.get("ManagedPolicyArns")):
            out += _check_managed_policy(name, arn, tracing, "ManagedPolicyArns has")
        for policy in _candidates(rp.get("Policies")):
            label = f"{name}.{policy.get('PolicyName')}" if isinstance(policy, dict) else name
            out += check_document(template, label, policy.get("PolicyDocument") if isinstance(policy, dict) else None, tracing)
    for name, r in resources(template, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy").items():
        out += check_document(template, name, props(r).get("PolicyDocument"))
    return out


def check_queue_transport(template: dict) -> list[Violation]:
    """Every queue is encrypted at rest and refuses requests that are not over TLS (a queue
    policy denying sqs:* when aws:SecureTransport is false, on that queue's ARN)."""
    out = []
    tls_only: set[str] = set()
    all_queues = resources(template, "AWS::SQS::Queue")
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        pp = props(policy)
        # A policy under a condition protects a queue only if that queue shares the condition.
        queues = {
            target(q)
            for q in as_list(pp.get("Queues"))
            if "Condition" not in policy or (all_queues.get(target(q)) or {}).get("Condition") == policy["Condition"]
        }
        for st in as_list((pp.get("PolicyDocument") or {}).get("Statement")):
            if not isinstance(st, dict) or st.get("Effect") != "Deny" or st.get("Principal") not in ("*", {"AWS": "*"}):
                continue
            if not {"sqs:*", "*"} & set(as_list(st.get("Action"))):
                continue
            secure = ((st.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
            if str(secure).lower() != "false":
                continue
            arns = {getatt(r) for r in as_list(st.get("Resource"))}
            tls_only |= {q for q in queues if (q, "Arn") in arns}
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        qp = props(queue)
        if qp.get("SqsManagedSseEnabled") is not True and not qp.get("KmsMasterKeyId"):
            out.append(Violation("queue-tls", name, "not encrypted at rest: SqsManagedSseEnabled: true (or a KMS key)"))
        if name not in tls_only:
            out.append(Violation("queue-tls", name, "no queue policy denies sqs:* on it when aws:SecureTransport is false"))
    return out


def check_parameters_and_outputs(template: dict) -> list[Violation]:
    out = []
    params = template.get("Parameters") or {}
    missing = REQUIRED_PARAMETERS - set(params)
    if missing:
        out.append(Violation("parameters", "Parameters", f"missing {sorted(missing)}"))
    auth = params.get("AuthMode") or {}
    if auth and (set(auth.get("AllowedValues") or []) != {"AWS_IAM", "JWT"} or auth.get("Default") != "AWS_IAM"):
        out.append(Violation("parameters", "AuthMode", "AllowedValues must be [AWS_IAM, JWT], default AWS_IAM"))
    prefix = params.get("StaraSecretPrefix") or {}
    if prefix and not prefix.get("AllowedPattern"):
        out.append(Violation("parameters", "StaraSecretPrefix", "needs an AllowedPattern: an empty prefix would grant GetSecretValue on every secret"))

    outputs = template.get("Outputs") or {}
    values = [o.get("Value") for o in outputs.values() if isinstance(o, dict)]
    queue = connect_queue(template)
    qp = props(resources(template, "AWS::SQS::Queue").get(queue) or {}) if queue else {}
    dlq = target((qp.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
    refs = {target(v) for v in values if isinstance(v, dict) and "Ref" in v}
    if queue and queue not in refs:
        out.append(Violation("outputs", "Outputs", "no output with the connect queue's URL"))
    if dlq and dlq not in refs:
        out.append(Violation("outputs", "Outputs", "no output with the dead-letter queue's URL"))
    fan_out = verify_queue(template)
    fq = props(resources(template, "AWS::SQS::Queue").get(fan_out) or {}) if fan_out else {}
    fan_out_dlq = target((fq.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
    for queue_id, what in ((fan_out, "verify queue"), (fan_out_dlq, "verify queue's dead-letter queue")):
        if queue_id and queue_id not in refs:
            out.append(Violation("outputs", "Outputs", f"no output with the {what}'s URL"))
    api_urls = [v for v in values if isinstance(v, dict) and "Fn::Sub" in v and "execute-api" in str(v["Fn::Sub"])]
    if not api_urls:
        out.append(Violation("outputs", "Outputs", "no output with the API URL"))
    return out


def format_violations(violations: Iterable[Violation]) -> str:
    return "\n".join(str(v) for v in violations) or "(none)"
