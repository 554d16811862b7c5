"""The operations dashboard (template.yaml, AWS::CloudWatch::Dashboard): its body is JSON once
CloudFormation has substituted it, whichever conditions hold, it shows what operators need
(connects by outcome, verify's health counts with `Unchecked`, every dead-letter queue, the
verify queue and the fan-out listing, upstream latency p50/p99, every alarm), an output links to
it, and it names only metrics the functions write: every StaraConnect metric, dimension and
Function value must appear in the Rust code that writes Embedded Metric Format lines
(shared/src). A metric renamed in the code, or mistyped here, would leave an empty graph that
nobody notices; these rules fail instead. A resource that exists only under a condition (the
fan-out queues and alarms, the alerts alarm) may be named only through a `!Sub` variable under
that same condition, or the stack would fail to deploy without it. Each rule is also shown to
fail on a broken copy.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

import template_rules as rules

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
NAMESPACE = "StaraConnect"
PSEUDO = {"AWS::Region": "us-east-1", "AWS::StackName": "stack", "AWS::AccountId": "123456789012",
          "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def rust_metric_sources() -> str:
    """The Rust files that write metrics: the ones using MetricSet (adapters/metrics.rs included)."""
    files = [f for f in sorted((ROOT / "shared/src").rglob("*.rs")) if "MetricSet" in f.read_text()]
    assert files, "no Rust file under shared/src uses MetricSet: where do the metrics come from?"
    return "\n".join(f.read_text() for f in files)


def emitted(source: str) -> dict[str, set[str]]:
    """What the code writes: metric names, dimension names and Function values (string literals)."""
    return {
        # .count("Connects", 1), .millis("UpstreamLatency", ..), .millis_samples(..), and the
        # names passed to a helper that counts (`count("AlertsRefused")`).
        "metrics": set(re.findall(r'\b(?:count|millis|millis_samples)\(\s*"([A-Za-z0-9]+)"', source)),
        "dimensions": {"Function"} & set(re.findall(r'"(Function)"', source))
        | set(re.findall(r'\.dimension\(\s*"([A-Za-z0-9]+)"', source)),
        "functions": set(re.findall(r'MetricSet::new\(\s*"([a-z]+)"', source))
        | set(re.findall(r'LatencySamples::new\(\s*"([a-z]+)"', source)),
    }


def render(template: dict, value, conditions: dict[str, bool]) -> str:
    """A `!Sub` variable's value as CloudFormation renders it when `conditions` hold: resources
    as `<Name.Attribute>`, pseudo parameters as PSEUDO."""
    if isinstance(value, (str, int, float)):
        return str(value)
    assert isinstance(value, dict) and len(value) == 1, f"a variable the rule cannot render: {value!r}"
    (fn, arg), = value.items()
    if fn == "Fn::If":
        name, yes, no = arg
        return render(template, yes if conditions.get(name, False) else no, conditions)
    if fn == "Fn::Join":
        separator, parts = arg
        return separator.join(render(template, part, conditions) for part in parts)
    if fn == "Ref" and arg in PSEUDO:
        return PSEUDO[arg]
    name, attribute = rules.getatt(value) or (rules.target(value), "Ref")
    assert name in template["Resources"], f"the dashboard names {name}: no such resource"
    return f"<{name}.{attribute}>"


def substitute(template: dict, body, conditions: dict[str, bool] | None = None) -> str:
    """The body as CloudFormation renders it when `conditions` hold (default: every condition
    true), with placeholder values; fails on an unknown name."""
    text, variables = (body, {}) if isinstance(body, str) else (body[0], body[1])
    resources = template["Resources"]
    if conditions is None:
        conditions = {name: True for name in template.get("Conditions") or {}}

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} renders as ${Literal}
        if name in variables:
            return render(template, variables[name], conditions)
        if name in PSEUDO or name in (template.get("Parameters") or {}):
            return PSEUDO.get(name, f"<{name}>")
        resource, _, attribute = name.partition(".")
        assert resource in resources, f"the dashboard body names ${{{name}}}: no such resource"
        return f"<{resource}.{attribute or 'Ref'}>"

    return re.sub(r"\$\{([^}]+)\}", value, text)


def named(value) -> set[str]:
    """The resources a value names through Ref or GetAtt, however deep."""
    found = set()
    if isinstance(value, dict):
        if rules.target(value):
            found.add(rules.target(value))
        for inner in value.values():
            found |= named(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= named(inner)
    return found


def unguarded(template: dict, body) -> list[str]:
    """Conditional resources the body names where they may not exist: in its text (always
    rendered), or in a variable outside an `!If` on the resource's own condition."""
    text, variables = (body, {}) if isinstance(body, str) else (body[0], body[1])
    resources = template["Resources"]
    out = []
    for name in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}", text):
        condition = (resources.get(name) or {}).get("Condition")
        if condition:
            out.append(f"${{{name}...}} in the body: {name} exists only when {condition}")
    for variable, value in variables.items():
        for under, leaf in rules.branches(value):
            for name in named(leaf):
                condition = (resources.get(name) or {}).get("Condition")
                if condition and (condition, True) not in under:
                    out.append(f"variable {variable} names {name} outside !If [{condition}, ...]")
    return out


def dashboards(template: dict) -> dict[str, dict]:
    return {n: r for n, r in template["Resources"].items() if r.get("Type") == "AWS::CloudWatch::Dashboard"}


def body_of(template: dict, conditions: dict[str, bool] | None = None) -> dict:
    (resource,) = dashboards(template).values()
    body = resource["Properties"]["DashboardBody"]
    assert isinstance(body, dict) and "Fn::Sub" in body, "DashboardBody is a !Sub of the JSON text"
    return json.loads(substitute(template, body["Fn::Sub"], conditions))


def sub_of(template: dict):
    (resource,) = dashboards(template).values()
    return resource["Properties"]["DashboardBody"]["Fn::Sub"]


def metric_references(body: dict) -> list[dict]:
    """Every metric the widgets name: {namespace, metric, dimensions: {name: value}, stat}."""
    found = []
    for widget in body["widgets"]:
        if widget.get("type") != "metric":
            continue
        properties = widget["properties"]
        for entry in properties["metrics"]:
            options = entry[-1] if entry and isinstance(entry[-1], dict) else {}
            expression = options.get("expression")
            if expression:
                search = re.fullmatch(r"SEARCH\('\{([^}]*)\} (.*)', '(\w+)', \d+\)", expression)
                assert search, f"an expression the rule cannot read: {expression}"
                namespace, *dimension_names = search.group(1).split(",")
                terms = dict(re.findall(r'(\w+)="([^"]*)"', search.group(2)))
                metric = terms.pop("MetricName")
                dimensions = {name: terms.get(name) for name in dimension_names}
                found.append({"namespace": namespace, "metric": metric, "dimensions": dimensions,
                              "stat": search.group(3), "title": properties["title"]})
                continue
            names = entry[:-1] if options else entry
            assert "..." not in names and "." not in names, "write every metric in full (no '.' or '...')"
            namespace, metric, *pairs = names
            found.append({"namespace": namespace, "metric": metric,
                          "dimensions": dict(zip(pairs[0::2], pairs[1::2])),
                          "stat": options.get("stat", properties.get("stat")), "title": properties["title"]})
    return found


def violations(template: dict, source: str) -> list[str]:
    out = []
    found = dashboards(template)
    if len(found) != 1:
        return [f"expected one AWS::CloudWatch::Dashboard, found {sorted(found)}"]
    try:
        for case in rules.condition_cases(template):
            body_of(template, case)
        body = body_of(template)
    except (AssertionError, ValueError, TypeError) as error:
        return [f"the dashboard body does not render to JSON: {error}"]
    out += unguarded(template, sub_of(template))
    code = emitted(source)
    references = metric_references(body)
    for ref in references:
        where = f"{ref['title']!r}: {ref['namespace']} {ref['metric']}"
        if ref["namespace"] == NAMESPACE:
            if ref["metric"] not in code["metrics"]:
                out.append(f"{where}: no code writes the metric {ref['metric']}")
            for name, value in ref["dimensions"].items():
                if name not in code["dimensions"]:
                    out.append(f"{where}: no code writes the dimension {name}")
                if name == "Function" and value not in code["functions"]:
                    out.append(f"{where}: no function writes metrics as Function={value}")
        elif ref["namespace"] == "AWS/SQS":
            queue = ref["dimensions"].get("QueueName", "")
            name = re.fullmatch(r"<(\w+)\.QueueName>", queue)
            if not name or template["Resources"].get(name.group(1), {}).get("Type") != "AWS::SQS::Queue":
                out.append(f"{where}: QueueName {queue!r} is not the name of a queue of this template")
        else:
            out.append(f"{where}: a namespace this rule does not know")

    def shows(metric, dimension=None, stat=None, queue=None):
        return any(r["metric"] == metric and (dimension is None or dimension in r["dimensions"])
                   and (stat is None or r["stat"] == stat)
                   and (queue is None or r["dimensions"].get("QueueName") == f"<{queue}.QueueName>")
                   for r in references)

    if not shows("Connects", dimension="Outcome"):
        out.append("the dashboard does not show connects by outcome (Connects, dimension Outcome)")
    for count in ("Checked", "Healthy", "Unhealthy", "Missing", "Pending", "Errors", "Unchecked", "Listed", "CheckMessages"):
        if not any(r["metric"] == count and r["dimensions"] == {"Function": "verify"} for r in references):
            out.append(f"the dashboard does not show verify's {count} (Function=verify)")
    queue = rules.verify_queue(template)
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        if queue and not shows(metric, queue=queue):
            out.append(f"the dashboard does not show the verify queue's {metric}")
    for queue, r in template["Resources"].items():
        is_dlq = r.get("Type") == "AWS::SQS::Queue" and (
            "DeadLetter" in queue or "dlq" in json.dumps(r.get("Properties", {}).get("QueueName", "")))
        if is_dlq and not shows("ApproximateNumberOfMessagesVisible", queue=queue):
            out.append(f"the dashboard does not show the depth of the dead-letter queue {queue}")
    for stat in ("p50", "p99"):
        if not shows("UpstreamLatency", stat=stat):
            out.append(f"the dashboard does not show UpstreamLatency {stat}")

    shown_alarms = {a for w in body["widgets"] if w.get("type") == "alarm" for a in w["properties"]["alarms"]}
    for alarm in rules.resources(template, "AWS::CloudWatch::Alarm"):
        if f"<{alarm}.Arn>" not in shown_alarms:
            out.append(f"the dashboard's alarm widget does not show {alarm}")

    outputs = [o.get("Value") for o in (template.get("Outputs") or {}).values()]
    (name,) = dashboards(template)
    if not any(isinstance(v, dict) and "console.aws.amazon.com/cloudwatch" in str(v.get("Fn::Sub", ""))
               and "${" + name + "}" in str(v.get("Fn::Sub", "")) for v in outputs):
        out.append("no output with the dashboard's console URL")
    return out


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def source() -> str:
    return rust_metric_sources()


def test_the_dashboard_keeps_every_rule(template, source):
    assert violations(template, source) == []


def test_the_rule_reads_the_code(source):
    code = emitted(source)
    # If these are not found, the rule's patterns no longer match how the code writes metrics.
    assert {"Connects", "UpstreamLatency", "Checked", "Errors"} <= code["metrics"], code
    # Issue 12: verify writes these in both modes (Unchecked) or when it fans out (the others).
    assert {"Unchecked", "Listed", "CheckMessages"} <= code["metrics"], code
    assert {"Function", "Outcome"} <= code["dimensions"], code
    assert {"connect", "verify"} <= code["functions"], code


def test_the_body_renders_to_json_with_the_queues_and_alarms(template):
    body = body_of(template)
    rendered = json.dumps(body)
    assert "<ConnectDeadLetterQueue.QueueName>" in rendered
    assert "<VerifyQueue.QueueName>" in rendered and "<VerifyDeadLetterQueue.QueueName>" in rendered
    alarms = [w for w in body["widgets"] if w["type"] == "alarm"]
    for arn in (a for w in alarms for a in w["properties"]["alarms"]):
        name = re.fullmatch(r"<(\w+)\.Arn>", arn)
        assert name and template["Resources"][name.group(1)]["Type"] == "AWS::CloudWatch::Alarm", arn
    # Without fan-out or alerts, their queues and alarms are not named at all.
    off = body_of(template, {name: False for name in template["Conditions"]})
    rendered = json.dumps(off)
    for name, resource in template["Resources"].items():
        if resource.get("Condition"):
            assert f"<{name}." not in rendered, f"{name} is named when it does not exist"
    off_alarms = [a for w in off["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]]
    assert len(off_alarms) == len([a for a in rules.resources(template, "AWS::CloudWatch::Alarm").values() if "Condition" not in a])
    assert unguarded(template, sub_of(template)) == []


def _broken(template, old, new):
    broken = copy.deepcopy(template)
    sub = sub_of(broken)
    assert old in sub[0], old
    sub[0] = sub[0].replace(old, new)
    return broken


@pytest.mark.parametrize("old, new, expected", [
    ('"Healthy", "Function"', '"Healty", "Function"', "no code writes the metric Healty"),
    ('"Checked", "Function", "verify"', '"Checked", "Function", "verifier"', "Function=verifier"),
    ('MetricName=\\"Connects\\"', 'MetricName=\\"Connections\\"', "no code writes the metric Connections"),
    ("{StaraConnect,Function,Outcome} MetricName=\\\"Connects\\\"",
     "{StaraConnect,Function,Result} MetricName=\\\"Connects\\\"", "no code writes the dimension Result"),
    ("${ConnectDeadLetterQueue.QueueName}", "stara-connect-dlq", "is not the name of a queue"),
    ("${ConnectDeadLetterQueue.QueueName}", "${ConnectDeadLetterQueu.QueueName}", "does not render to JSON"),
    ('"widgets": [', '"widgets": [,', "does not render to JSON"),
    ("'p99', 300", "'p90', 300", None),  # connect p99 gone; verify's p99 remains: still fine
])
def test_each_rule_can_fail(template, source, old, new, expected):
    found = violations(_broken(template, old, new), source)
    if expected is None:
        assert found == []
    else:
        assert any(expected in v for v in found), found


def test_missing_panels_and_output_are_caught(template, source):
    broken = _broken(template, '["StaraConnect", "Pending", "Function", "verify", {"label": "pending"}],', "")
    assert any("verify's Pending" in v for v in violations(broken, source))
    broken = _broken(template, '"${VerifyScheduleDeadLetterQueue.QueueName}"', '"${ConnectDeadLetterQueue.QueueName}"')
    assert any("VerifyScheduleDeadLetterQueue" in v for v in violations(broken, source))
    broken = _broken(template, '{"stat": "p99", "label": "p99"}', '{"stat": "p90", "label": "p90"}')
    broken = _broken(broken, "'p99', 300", "'p90', 300")
    assert any("UpstreamLatency p99" in v for v in violations(broken, source))
    broken = copy.deepcopy(template)
    del broken["Outputs"]["DashboardUrl"]
    assert "no output with the dashboard's console URL" in violations(broken, source)


def test_a_metric_the_code_stops_writing_is_caught(template, source):
    assert any("UpstreamLatency" in v for v in violations(template, source.replace('"UpstreamLatency"', '"Latency"')))
    assert any("no code writes the metric Unchecked" in v for v in violations(template, source.replace('"Unchecked"', '"NotChecked"')))


def test_fan_out_panels_and_alarms_are_caught(template, source):
    """The verify queue, its DLQ, Unchecked and the fan-out listing must be shown, every alarm
    must be on the alarm widget, and a conditional resource may only come in under its condition."""
    broken = _broken(template, '["StaraConnect", "Unchecked", "Function", "verify", {"label": "unchecked (out of time)"}],\n', "")
    assert any("verify's Unchecked" in v for v in violations(broken, source))
    broken = _broken(template, '["StaraConnect", "Listed", "Function", "verify", {"label": "growers listed"}],\n', "")
    assert any("verify's Listed" in v for v in violations(broken, source))
    broken = _broken(template, '"${VerifyDeadLetterQueueName}"', '"${ConnectDeadLetterQueue.QueueName}"')
    assert any("dead-letter queue VerifyDeadLetterQueue" in v for v in violations(broken, source))
    broken = _broken(template, '"ApproximateAgeOfOldestMessage", "QueueName", "${VerifyQueueName}"',
                     '"ApproximateAgeOfOldestMessage", "QueueName", "${ConnectQueue.QueueName}"')
    assert any("verify queue's ApproximateAgeOfOldestMessage" in v for v in violations(broken, source))
    broken = _broken(template, '${FanOutAlarms}', "")
    assert any("does not show VerifyDeadLetterAlarm" in v for v in violations(broken, source))
    broken = _broken(template, '"${VerifyCheckErrorsAlarm.Arn}",\n', "")
    assert any("does not show VerifyCheckErrorsAlarm" in v for v in violations(broken, source))
    # Named in the body itself, the fan-out queue would break a stack deployed without fan-out.
    broken = _broken(template, '"${VerifyQueueName}"', '"${VerifyQueue.QueueName}"')
    assert any("VerifyQueue exists only when FanOutEnabled" in v for v in violations(broken, source))
    broken = copy.deepcopy(template)
    sub_of(broken)[1]["VerifyQueueName"] = {"Fn::GetAtt": ["VerifyQueue", "QueueName"]}
    assert any("names VerifyQueue outside !If [FanOutEnabled" in v for v in violations(broken, source))
    broken = copy.deepcopy(template)
    sub_of(broken)[1]["VerifyQueueName"] = {"Fn::If": ["UseJwt", {"Fn::GetAtt": ["VerifyQueue", "QueueName"]}, "x"]}
    assert any("names VerifyQueue outside !If [FanOutEnabled" in v for v in violations(broken, source))
    # A fragment that breaks the JSON in one mode only is caught too.
    broken = copy.deepcopy(template)
    sub_of(broken)[1]["FanOutAlarms"]["Fn::If"][2] = ", "
    assert any("does not render to JSON" in v for v in violations(broken, source))
