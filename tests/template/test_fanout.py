"""Fan-out (issue 12, docs/VERIFY.md#fan-out-mode): the verify queue, its DLQ, its event source
mapping, the LeafRates table that turns the fleet-wide Leaf rate into processes and a
per-process LEAF_MAX_RPS, verify's rights on its own queue, and the alarms that work in both
modes. The template as it is keeps these rules (test_template.py runs them all); here each rule
is shown on the real values and then broken in a copy, and the checker must name it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

import template_rules as rules

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


def _res(t, name) -> dict:
    return t["Resources"][name]["Properties"]


def _verify_env(t) -> dict:
    return _res(t, "VerifyFunction")["Environment"]["Variables"]


def _verify_statements(t) -> list:
    return _res(t, "VerifyFunction")["Policies"][0]["Statement"]


def _fan_out_statement(t) -> dict:
    (st,) = [s["Fn::If"][1] for s in _verify_statements(t) if isinstance(s, dict) and "Fn::If" in s]
    return st


def _broken(template, change) -> set[str]:
    mutant = copy.deepcopy(template)
    change(mutant)
    return {v.rule for v in rules.check(mutant)}


# ------------------------------------------------------------------------------------------------
# The template as it is
# ------------------------------------------------------------------------------------------------


def test_fan_out_is_on_by_default_and_every_part_exists_only_with_it(template):
    params = template["Parameters"]
    assert params["VerifyFanOut"]["Default"] == "Enabled"
    assert set(params["VerifyFanOut"]["AllowedValues"]) == {"Enabled", "Disabled"}
    assert template["Conditions"]["FanOutEnabled"] == {"Fn::Equals": [{"Ref": "VerifyFanOut"}, "Enabled"]}
    conditional = {n for n, r in template["Resources"].items() if r.get("Condition") == "FanOutEnabled"}
    assert conditional == {
        "VerifyQueue",
        "VerifyDeadLetterQueue",
        "VerifyQueuesTlsOnlyPolicy",
        "VerifyQueueEventSourceMapping",
        "VerifyDeadLetterAlarm",
        "VerifyQueueAgeAlarm",
    }
    assert {n for n, o in template["Outputs"].items() if o.get("Condition") == "FanOutEnabled"} == {"VerifyQueueUrl", "VerifyDeadLetterQueueUrl"}
    # Both new parameters are in the console's Verification group.
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (verification,) = [g for g in groups if g["Label"]["default"] == "Verification"]
    assert {"VerifyFanOut", "LeafFleetMaxRps"} <= set(verification["Parameters"])


def test_the_verify_queue_is_standard_with_a_dlq_and_a_long_enough_visibility(template):
    assert rules.verify_queue(template) == "VerifyQueue"
    queue = _res(template, "VerifyQueue")
    timeout = _res(template, "VerifyFunction")["Timeout"]
    assert "FifoQueue" not in queue and not str(queue["QueueName"]).endswith(".fifo")
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    # A message lives through its 5 receives before it could expire: 1 day > 5 x 30 minutes.
    assert queue["MessageRetentionPeriod"] == 86400 > 5 * queue["VisibilityTimeout"]
    dlq = _res(template, rules.target(queue["RedrivePolicy"]["deadLetterTargetArn"]))
    assert "FifoQueue" not in dlq and dlq["MessageRetentionPeriod"] == 1209600
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True


def test_the_mapping_reports_item_failures_and_takes_its_concurrency_from_leaf_rates(template):
    mapping = template["Resources"]["VerifyQueueEventSourceMapping"]
    ep = mapping["Properties"]
    assert mapping["DependsOn"] == "VerifyFunctionRole"
    assert ep["EventSourceArn"] == {"Fn::GetAtt": ["VerifyQueue", "Arn"]}
    assert ep["FunctionName"] == {"Ref": "VerifyFunction"}
    assert ep["BatchSize"] == 10 and ep["Enabled"] is True
    assert ep["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert ep["ScalingConfig"]["MaximumConcurrency"] == {"Fn::FindInMap": ["LeafRates", {"Ref": "LeafFleetMaxRps"}, "MaximumConcurrency"]}


def test_verify_gets_the_queue_url_and_its_leaf_rate_in_either_mode(template):
    variables = _verify_env(template)
    assert variables["VERIFY_QUEUE_URL"] == {"Fn::If": ["FanOutEnabled", {"Ref": "VerifyQueue"}, {"Ref": "AWS::NoValue"}]}
    fan_out, single = variables["LEAF_MAX_RPS"]["Fn::If"][1:]
    assert fan_out == {"Fn::FindInMap": ["LeafRates", {"Ref": "LeafFleetMaxRps"}, "LeafMaxRps"]}
    assert single == {"Ref": "LeafFleetMaxRps"}
    # The schedule's target is unchanged: the scheduled invocation decides the mode itself.
    (event,) = rules.events(_res(template, "VerifyFunction"), "ScheduleV2").values()
    assert event["Properties"]["Input"] == '{"source":"stara-connect.scheduler","action":"verify-all"}'


def test_leaf_rates_split_each_fleet_rate_within_it(template):
    table = template["Mappings"]["LeafRates"]
    param = template["Parameters"]["LeafFleetMaxRps"]
    assert sorted(map(str, param["AllowedValues"])) == sorted(table)
    assert str(param["Default"]) == "100"
    refused = rules._rates_refused_for_fan_out(template)
    assert refused == {"10", "20"}
    timeout = _res(template, "VerifyFunction")["Timeout"]
    print("\nLeafFleetMaxRps  MaximumConcurrency  LEAF_MAX_RPS  total  full batch")
    for key, row in table.items():
        rate, processes, per_process = int(key), row["MaximumConcurrency"], int(row["LeafMaxRps"])
        assert 2 <= processes <= 1000
        assert per_process == rate // processes and per_process * processes <= rate
        batch_s = 10 * 100 * 2 / per_process
        print(f"{rate:>15}  {processes:>18}  {per_process:>12}  {per_process * processes:>5}  {batch_s:>8.0f} s")
        if key not in refused:
            assert 25 <= per_process <= 50, key
            assert batch_s <= timeout / 2, key
    assert rules.check_rate_table(template, timeout) == []


def test_verify_works_only_its_own_queue_and_only_with_fan_out(template):
    st = _fan_out_statement(template)
    assert st["Resource"] == {"Fn::GetAtt": ["VerifyQueue", "Arn"]}
    assert set(st["Action"]) == rules.VERIFY_QUEUE_ACTIONS
    (wrapped,) = [s for s in _verify_statements(template) if isinstance(s, dict) and "Fn::If" in s]
    assert wrapped["Fn::If"][0] == "FanOutEnabled" and wrapped["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    # Connect still may not touch the verify queue.
    connect = [s for _, s in rules.statements(_res(template, "ConnectFunction")["Policies"])]
    assert not any(rules.target(r) == "VerifyQueue" for s in connect for r in rules.as_list(s["Resource"]))


def test_the_alarms_of_both_modes(template):
    alarms = {n: r["Properties"] for n, r in rules.resources(template, "AWS::CloudWatch::Alarm").items()}
    unchecked = alarms["VerifyUncheckedGrowersAlarm"]
    assert (unchecked["Namespace"], unchecked["MetricName"]) == ("StaraConnect", "Unchecked")
    assert unchecked["Dimensions"] == [{"Name": "Function", "Value": "verify"}]
    assert "Condition" not in template["Resources"]["VerifyUncheckedGrowersAlarm"]
    assert alarms["VerifyCheckErrorsAlarm"]["MetricName"] == "Errors"
    dlq = alarms["VerifyDeadLetterAlarm"]
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["VerifyDeadLetterQueue", "QueueName"]}}]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    age = alarms["VerifyQueueAgeAlarm"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    # Longer than a failing message takes to reach the DLQ (5 receives x visibility).
    assert age["Threshold"] > 5 * _res(template, "VerifyQueue")["VisibilityTimeout"]


# ------------------------------------------------------------------------------------------------
# Each rule, broken in a copy
# ------------------------------------------------------------------------------------------------


def _set(path, value):
    """A change that sets t[...path] = value (path: resource, then keys)."""

    def change(t):
        node = t["Resources"][path[0]]["Properties"]
        for key in path[1:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _pop(path):
    def change(t):
        node = t["Resources"][path[0]]["Properties"]
        for key in path[1:-1]:
            node = node[key]
        node.pop(path[-1])

    return change


def _row(key, **values):
    return lambda t: t["Mappings"]["LeafRates"][key].update(values)


def _fan_out(change):
    return lambda t: change(_fan_out_statement(t))


def _unwrap_fan_out_statement(t):
    statements = _verify_statements(t)
    (i,) = [i for i, s in enumerate(statements) if isinstance(s, dict) and "Fn::If" in s]
    statements[i] = statements[i]["Fn::If"][1]


def _unchecked_on_errors(t):
    _res(t, "VerifyUncheckedGrowersAlarm")["MetricName"] = "Errors"


def _unconditional(name):
    return lambda t: t["Resources"][name].pop("Condition")


BROKEN = {
    # The queue.
    "a FIFO verify queue": (_set(["VerifyQueue", "FifoQueue"], True), "verify-queue"),
    "a .fifo queue name": (_set(["VerifyQueue", "QueueName"], {"Fn::Sub": "${AWS::StackName}-verify.fifo"}), "verify-queue"),
    "visibility below 6 x verify's timeout": (_set(["VerifyQueue", "VisibilityTimeout"], 1799), "visibility"),
    "no DLQ": (_pop(["VerifyQueue", "RedrivePolicy"]), "dlq"),
    "too few receives": (_set(["VerifyQueue", "RedrivePolicy", "maxReceiveCount"], 3), "dlq"),
    "messages expire before their receives": (_set(["VerifyQueue", "MessageRetentionPeriod"], 9000), "dlq"),
    "a DLQ that keeps messages no longer": (_set(["VerifyDeadLetterQueue", "MessageRetentionPeriod"], 86400), "dlq"),
    "no DLQ alarm": (lambda t: t["Resources"].pop("VerifyDeadLetterAlarm"), "alarm"),
    "a queue that exists without fan-out": (_unconditional("VerifyQueue"), "fan-out"),
    "no TLS-only policy on the verify queues": (lambda t: t["Resources"].pop("VerifyQueuesTlsOnlyPolicy"), "queue-tls"),
    "the TLS policy under another condition": (lambda t: t["Resources"]["VerifyQueuesTlsOnlyPolicy"].__setitem__("Condition", "UseJwt"), "queue-tls"),
    "no output with the queue URL": (lambda t: t["Outputs"].pop("VerifyQueueUrl"), "outputs"),
    # The mapping.
    "no ReportBatchItemFailures": (_pop(["VerifyQueueEventSourceMapping", "FunctionResponseTypes"]), "batch-failures"),
    "a misspelt ReportBatchItemFailures": (_set(["VerifyQueueEventSourceMapping", "FunctionResponseTypes"], ["ReportBatchItemFailure"]), "batch-failures"),
    "a literal MaximumConcurrency": (_set(["VerifyQueueEventSourceMapping", "ScalingConfig", "MaximumConcurrency"], 5), "max-concurrency"),
    "MaximumConcurrency from the wrong column": (
        _set(["VerifyQueueEventSourceMapping", "ScalingConfig", "MaximumConcurrency"], {"Fn::FindInMap": ["LeafRates", {"Ref": "LeafFleetMaxRps"}, "LeafMaxRps"]}),
        "max-concurrency",
    ),
    "batches of 5": (_set(["VerifyQueueEventSourceMapping", "BatchSize"], 5), "verify-queue"),
    "a disabled mapping": (_set(["VerifyQueueEventSourceMapping", "Enabled"], False), "verify-queue"),
    "a mapping created before the role": (lambda t: t["Resources"]["VerifyQueueEventSourceMapping"].pop("DependsOn"), "esm-order"),
    "a mapping that exists without fan-out": (_unconditional("VerifyQueueEventSourceMapping"), "fan-out"),
    "verify polling the connect queue too": (
        lambda t: t["Resources"].__setitem__("Extra", {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Ref": "VerifyFunction"}, "EventSourceArn": {"Fn::GetAtt": ["ConnectQueue", "Arn"]}}}),
        "verify-queue",
    ),
    # The rate table.
    "a row over its fleet rate": (_row("200", LeafMaxRps="60"), "fan-out-rate"),
    "a row that does not divide down": (_row("1000", LeafMaxRps="40"), "fan-out-rate"),
    "one process": (_row("100", MaximumConcurrency=1, LeafMaxRps="100"), "fan-out-rate"),
    "a row too slow for a batch": (_row("50", MaximumConcurrency=5, LeafMaxRps="10"), "fan-out-rate"),
    "a value without a row": (lambda t: t["Parameters"]["LeafFleetMaxRps"]["AllowedValues"].append(300), "fan-out-rate"),
    "a low rate fan-out accepts": (lambda t: t["Rules"].pop("FanOutNeedsALeafRateOf50OrMore"), "fan-out-rate"),
    "another default": (lambda t: t["Parameters"]["LeafFleetMaxRps"].__setitem__("Default", 200), "fan-out-rate"),
    "fan-out off by default": (lambda t: t["Parameters"]["VerifyFanOut"].__setitem__("Default", "Disabled"), "fan-out"),
    # Verify's environment.
    "a literal queue URL": (lambda t: _verify_env(t).__setitem__("VERIFY_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q"), "verify-env"),
    "the queue URL without fan-out too": (lambda t: _verify_env(t).__setitem__("VERIFY_QUEUE_URL", {"Ref": "VerifyQueue"}), "verify-env"),
    "the fleet rate to every process": (lambda t: _verify_env(t).__setitem__("LEAF_MAX_RPS", {"Ref": "LeafFleetMaxRps"}), "verify-env"),
    "no rate cap": (lambda t: _verify_env(t).pop("LEAF_MAX_RPS"), "verify-env"),
    # Verify's rights.
    "verify's queue rights on every queue": (_fan_out(lambda st: st.__setitem__("Resource", "*")), "sqs-scope"),
    "verify polling the connect queue": (_fan_out(lambda st: st.__setitem__("Resource", {"Fn::GetAtt": ["ConnectQueue", "Arn"]})), "sqs-scope"),
    "verify sending to the DLQ": (_fan_out(lambda st: st.__setitem__("Resource", {"Fn::GetAtt": ["VerifyDeadLetterQueue", "Arn"]})), "sqs-scope"),
    "verify purging its queue": (_fan_out(lambda st: st["Action"].append("sqs:PurgeQueue")), "iam"),
    "verify's queue rights without fan-out too": (_unwrap_fan_out_statement, "fan-out"),
    "no poll rights": (_fan_out(lambda st: st["Action"].remove("sqs:ReceiveMessage")), "queue-permissions"),
    "connect polling the verify queue": (
        lambda t: t["Resources"]["ConnectFunction"]["Properties"]["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["VerifyQueue", "Arn"]}}),
        "sqs-scope",
    ),
    # Alarms.
    "the unchecked alarm on Errors": (_unchecked_on_errors, "unchecked-alarm"),
    "the unchecked alarm only with fan-out": (lambda t: t["Resources"]["VerifyUncheckedGrowersAlarm"].__setitem__("Condition", "FanOutEnabled"), "unchecked-alarm"),
}


@pytest.mark.parametrize("what", list(BROKEN), ids=list(BROKEN))
def test_a_broken_fan_out_is_caught(template, what):
    change, rule = BROKEN[what]
    broken = _broken(template, change)
    assert rule in broken, f"{what}: expected rule {rule!r}, got {sorted(broken)}"


def test_the_real_template_breaks_no_fan_out_rule(template):
    assert rules.check_verify_fan_out(template, *rules.functions_by_binary(template)["verify"]) == []
    assert rules.check_unchecked_alarm(template) == []


def test_conditional_statements_are_opened_for_every_rule():
    """A statement behind !If is checked in both branches: hiding '*' there does not help."""
    policies = [{"Statement": [{"Fn::If": ["C", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}, {"Ref": "AWS::NoValue"}]}]}]
    ((under, _, st),) = list(rules.guarded_statements(policies))
    assert under == (("C", True),) and st["Resource"] == "*"
    entry_level = [{"Fn::If": ["C", {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, "AWSLambdaBasicExecutionRole"]}]
    assert [(u, st is None) for u, _, st in rules.guarded_statements(entry_level)] == [((("C", True),), False), ((("C", False),), True)]
