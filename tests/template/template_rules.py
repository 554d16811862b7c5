"""The rules template.yaml must keep, as one function that lists every violation.

`check(template)` takes the template as loaded by cfn-lint's CloudFormation-aware YAML loader
(`cfnlint.decode.cfn_yaml.load`), so `!Ref`, `!GetAtt`, `!Sub` and `!If` arrive as their long
forms (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`, ...). It returns `Violation`s; each names its
rule, so a test can prove that breaking one rule is caught by that rule.

cfn-lint and `sam validate --lint` check that the template is well formed; they accept a wrong
but well-formed `Runtime` (`provided.al2`) and a misspelt `FunctionResponseTypes` entry, and
they know nothing of this project's rules (timeouts against API Gateway's 30 s, least privilege,
every route authorized). Those are checked here.
"""

from __future__ import annotations

import json
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
DEFAULT_UPSTREAM_BUDGET_MS = 25_000  # shared/src/config.rs HttpSettings::default
DEFAULT_HTTP_TIMEOUT_MS = 10_000
RESPONSE_MARGIN_MS = 1_000  # the handler keeps 300 ms; allow for the response and logs too

ROUTES = {
    "POST /connections": "connect",
    "DELETE /connections/{leafUserId}": "connect",
    "GET /connections/{leafUserId}": "verify",
}
SCHEDULER_INPUT = {"source": "stara-connect.scheduler", "action": "verify-all"}
ALLOWED_ACTIONS = {
    "connect": {"secretsmanager:GetSecretValue"},
    "verify": {"secretsmanager:GetSecretValue", "secretsmanager:ListSecrets", "sqs:SendMessage"},
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
}
AUTHORIZED_TYPES = {"AWS_IAM", "JWT", "CUSTOM"}


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


def connect_queue(template: dict) -> str | None:
    """Logical id of the queue connect's SQS event reads."""
    fns = functions_by_binary(template)
    if "connect" not in fns:
        return None
    sqs = events(function_props(template, fns["connect"][1]), "SQS")
    if len(sqs) != 1:
        return None
    return target((next(iter(sqs.values())).get("Properties") or {}).get("Queue"))


def events(fprops: dict, *types: str) -> dict[str, dict]:
    return {n: e for n, e in (fprops.get("Events") or {}).items() if isinstance(e, dict) and e.get("Type") in types}


def env(fprops: dict) -> dict:
    return ((fprops.get("Environment") or {}).get("Variables")) or {}


def statements(policies: Any) -> Iterator[tuple[Any, dict | None]]:
    """Each (policy entry, statement) of a SAM `Policies` value. Statement is None for entries
    that are not inline statements (managed policy names or ARNs, SAM policy templates)."""
    for entry in as_list(policies):
        if isinstance(entry, dict) and "Statement" in entry:
            for st in as_list(entry["Statement"]):
                yield entry, st if isinstance(st, dict) else None
        else:
            yield entry, None


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
    out += check_routes(template, fns)
    out += check_iam(template, fns)
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
    sqs = events(p, "SQS")
    if len(sqs) != 1:
        return [Violation("queue", name, f"connect needs exactly one SQS event, found {len(sqs)}")]
    event_name, event = next(iter(sqs.items()))
    where = f"{name}.Events.{event_name}"
    ep = event.get("Properties") or {}
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

    queue_name = target(ep.get("Queue"))
    queues = resources(template, "AWS::SQS::Queue")
    if queue_name not in queues:
        return out + [Violation("queue", where, f"Queue must be !GetAtt of an AWS::SQS::Queue in this template, got {ep.get('Queue')!r}")]
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
    queue = connect_queue(template)

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
                        if x == "*" or (isinstance(x, str) and x.endswith(":*")):
                            out.append(Violation("secrets-scope", fname, f"GetSecretValue on {x!r}"))
                        elif _grower_prefix_arn(x):
                            if binary not in GROWER_SECRET_READERS:
                                out.append(Violation("secrets-scope", fname, f"{binary} never reads a grower's login: no GetSecretValue on the grower prefix"))
                        elif not leaf:
                            out.append(Violation("secrets-scope", fname, f"GetSecretValue on {x!r}: only the grower prefix and the Leaf secret ARN"))
                    if not res:
                        out.append(Violation("secrets-scope", fname, "GetSecretValue without Resource"))
                elif action == "secretsmanager:ListSecrets":
                    if binary != "verify":
                        out.append(Violation("iam", fname, "ListSecrets is for verify only"))
                elif action == "sqs:SendMessage":
                    if len(res) != 1 or queue is None or getatt(res[0]) != (queue, "Arn"):
                        out.append(Violation("sqs-scope", fname, f"sqs:SendMessage must be on the connect queue's ARN only, got {res!r}"))
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
    api_urls = [v for v in values if isinstance(v, dict) and "Fn::Sub" in v and "execute-api" in str(v["Fn::Sub"])]
    if not api_urls:
        out.append(Violation("outputs", "Outputs", "no output with the API URL"))
    return out


def format_violations(violations: Iterable[Violation]) -> str:
    return "\n".join(str(v) for v in violations) or "(none)"
