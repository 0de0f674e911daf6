"""infra/template.yaml: cfn-lint passes, and the CloudFormation the SAM transform makes of it has
the schedules, the dead-letter queue, the exporter's concurrency, least-privilege policies and a
private database that the deployment promises (all offline)."""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from cfnlint.config import ManualArgs  # type: ignore[import-untyped]

from tests import infra_helpers as infra
from tests.infra_helpers import (
    as_list,
    build_layers,
    export,
    of_type,
    rds,
    references,
    statements,
)

FUNCTIONS = {
    "GeneratorFunction": "GeneratorIntervalMinutes",
    "ExporterFunction": "ExporterIntervalMinutes",
}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return infra.template()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return infra.transformed()


def test_cfn_lint_passes() -> None:
    matches = lint_file(
        infra.TEMPLATE,
        ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1", "ap-northeast-1"]),
    )
    assert [str(m) for m in matches] == []


def test_both_schedules_retry_and_send_what_fails_to_the_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    schedules = of_type(cfn, "AWS::Scheduler::Schedule")
    targets = {references(s["Properties"]["Target"]["Arn"]).pop(): s for s in schedules.values()}
    assert set(targets) == set(FUNCTIONS)
    for function, interval in FUNCTIONS.items():
        props = targets[function]["Properties"]
        assert props["ScheduleExpression"] == {"Fn::Sub": f"rate(${{{interval}}} minutes)"}
        assert props["State"] == {"Ref": "SchedulesState"}
        assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert props["Target"]["DeadLetterConfig"] == {
            "Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
        }
        # the scheduler's role may invoke this function and write to the queue, nothing else
        role = cfn["Resources"][references(props["Target"]["RoleArn"]).pop()]
        granted = {(s["Action"], json.dumps(s["Resource"])) for s in statements(role)}
        assert granted == {
            ("lambda:InvokeFunction", json.dumps({"Fn::GetAtt": [function, "Arn"]})),
            ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})),
        }


def test_failed_invocations_end_in_the_dead_letter_queue(cfn: dict[str, Any]) -> None:
    configs = of_type(cfn, "AWS::Lambda::EventInvokeConfig")
    by_function = {references(c["Properties"]["FunctionName"]).pop(): c for c in configs.values()}
    assert set(by_function) == set(FUNCTIONS)
    for config in by_function.values():
        props = config["Properties"]
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
        }
        assert props["MaximumRetryAttempts"] <= 2


def test_timeouts_stay_below_the_shortest_schedule_interval(cfn: dict[str, Any]) -> None:
    for function, interval in FUNCTIONS.items():
        timeout = cfn["Resources"][function]["Properties"]["Timeout"]
        shortest = cfn["Parameters"][interval]["MinValue"] * 60
        assert timeout < shortest, (function, timeout, shortest)


def test_exporter_runs_one_at_a_time_where_the_account_allows(cfn: dict[str, Any]) -> None:
    reserved = cfn["Resources"]["ExporterFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {"Fn::If": ["ReservesExporterConcurrency", 1, {"Ref": "AWS::NoValue"}]}
    assert cfn["Conditions"]["ReservesExporterConcurrency"] == {
        "Fn::Equals": [{"Ref": "ReserveExporterConcurrency"}, "true"]
    }
    assert cfn["Parameters"]["ReserveExporterConcurrency"]["Default"] == "true"


def test_function_roles_reach_only_the_secret_the_lake_and_the_queue(cfn: dict[str, Any]) -> None:
    secret = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
    for function in FUNCTIONS:
        role_id = references(cfn["Resources"][function]["Properties"]["Role"]).pop()
        role = cfn["Resources"][role_id]
        managed = role["Properties"]["ManagedPolicyArns"]
        assert sorted(m.rsplit("/", 1)[-1] for m in managed) == [
            "AWSLambdaBasicExecutionRole",
            "AWSLambdaVPCAccessExecutionRole",
        ]
        for statement in statements(role):
            assert statement["Effect"] == "Allow"
            actions = as_list(statement["Action"])
            resources = as_list(statement["Resource"])
            assert "*" not in resources and not any("*" in a for a in actions), statement
            for action in actions:
                service = action.split(":")[0]
                if service == "secretsmanager":
                    assert action == "secretsmanager:GetSecretValue"
                    assert resources == [secret]
                elif service == "s3":
                    assert function == "ExporterFunction"
                    assert references(resources) == {"LakeBucket"}
                elif service == "sqs":
                    assert action == "sqs:SendMessage"
                    assert references(resources) == {"DeadLetterQueue"}
                else:
                    pytest.fail(f"{function} may {action}")
    exporter_role = cfn["Resources"]["ExporterFunctionRole"]
    writes = [s for s in statements(exporter_role) if "s3:PutObject" in as_list(s["Action"])]
    assert [s["Resource"] for s in writes] == [{"Fn::Sub": "${LakeBucket.Arn}/lake/*"}]


def test_crawler_role_reads_the_lake_and_writes_only_its_catalog(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["LakeCrawlerRole"]
    assert "ManagedPolicyArns" not in role["Properties"]
    for statement in statements(role):
        actions = as_list(statement["Action"])
        assert not any(a.endswith(":*") or a == "*" for a in actions)
        assert "*" not in as_list(statement["Resource"])
        if any(a.startswith("s3:") for a in actions):
            assert set(actions) <= {"s3:GetObject", "s3:ListBucket"}
            assert references(statement["Resource"]) == {"LakeBucket"}
        if any(a.startswith("glue:") for a in actions):
            assert all("LakeCatalog" in json.dumps(r) or r["Fn::Sub"].endswith(":catalog")
                       for r in as_list(statement["Resource"]))  # fmt: skip


def test_database_is_private_encrypted_and_takes_tls_only(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["Database"]["Properties"]
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    parameters = cfn["Resources"]["DatabaseParameters"]["Properties"]["Parameters"]
    assert parameters["rds.force_ssl"] == "1"
    # no way in from outside the VPC, and nothing to leave it by but the endpoints
    kinds = {r["Type"] for r in cfn["Resources"].values()}
    assert not kinds & {
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::Route",
    }
    for subnet in of_type(cfn, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    ingress = [
        r["Properties"]
        for r in of_type(cfn, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Ref": "DatabaseSecurityGroup"}
    ]
    assert ingress and all("SourceSecurityGroupId" in i and "CidrIp" not in i for i in ingress)
    assert "SecurityGroupIngress" not in cfn["Resources"]["DatabaseSecurityGroup"]["Properties"]


def test_functions_reach_s3_and_secrets_manager_through_endpoints(cfn: dict[str, Any]) -> None:
    endpoints = {
        r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]: r["Properties"]
        for r in of_type(cfn, "AWS::EC2::VPCEndpoint").values()
    }
    assert endpoints["s3"]["VpcEndpointType"] == "Gateway"
    assert endpoints["secretsmanager"]["VpcEndpointType"] == "Interface"
    assert endpoints["secretsmanager"]["PrivateDnsEnabled"] is True
    assert references(endpoints["s3"]["PolicyDocument"]) == {"LakeBucket"}
    assert references(endpoints["secretsmanager"]["PolicyDocument"]) == {"Database"}
    for function in FUNCTIONS:
        vpc = cfn["Resources"][function]["Properties"]["VpcConfig"]
        assert references(vpc["SubnetIds"]) == {"PrivateSubnetA", "PrivateSubnetB"}


def test_lake_bucket_is_encrypted_private_and_tls_only(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["LakeBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    policy = cfn["Resources"]["LakeBucketPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Effect"] == "Deny"
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_functions_run_the_handlers_of_the_package(
    cfn: dict[str, Any], sam: dict[str, Any]
) -> None:
    assert sam["Globals"]["Function"]["Runtime"] == "python3.12"
    assert sam["Globals"]["Function"]["CodeUri"] == "build/function.zip"
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) == {
        rds.SECRET_ARN_VARIABLE,
        rds.HOST_VARIABLE,
        rds.PORT_VARIABLE,
        rds.NAME_VARIABLE,
    }
    assert rds.SSLMODE_OVERRIDE_VARIABLE not in json.dumps(cfn)
    exporter_variables = cfn["Resources"]["ExporterFunction"]["Properties"]["Environment"]
    assert exporter_variables["Variables"][export.TARGET_VARIABLE] == {
        "Fn::Sub": "s3://${LakeBucket}/lake"
    }
    for function in FUNCTIONS:
        props = cfn["Resources"][function]["Properties"]
        module, attribute = props["Handler"].rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attribute))
        assert props["Code"] == {"S3Bucket": "artifacts", "S3Key": "function.zip"}
    layers = of_type(sam, "AWS::Serverless::LayerVersion")
    assert {Path(layer["Properties"]["ContentUri"]).stem for layer in layers.values()} == set(
        build_layers.REQUIREMENTS
    )
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]


def test_glue_crawler_catalogs_each_table_folder_of_the_lake(cfn: dict[str, Any]) -> None:
    crawler = cfn["Resources"]["LakeCrawler"]["Properties"]
    (target,) = crawler["Targets"]["S3Targets"]
    assert target["Path"] == {"Fn::Sub": "s3://${LakeBucket}/lake/"}
    assert "_manifests/**" in target["Exclusions"]
    configuration = json.loads(crawler["Configuration"])
    # bucket (1) / lake (2) / <table> (3)
    depth = len(target["Path"]["Fn::Sub"].removeprefix("s3://").strip("/").split("/")) + 1
    assert configuration["Grouping"]["TableLevelConfiguration"] == depth
    assert crawler["DatabaseName"] == {"Ref": "LakeCatalog"}
    assert cfn["Resources"]["LakeCatalog"]["Type"] == "AWS::Glue::Database"


def test_the_samconfig_example_sets_parameters_of_the_template(sam: dict[str, Any]) -> None:
    config = tomllib.loads((infra.INFRA / "samconfig.toml.example").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"].split())
    assert set(overrides) <= set(sam["Parameters"])
    assert overrides["SchedulesState"] == "DISABLED"  # the database is empty at first


def test_admin_tunnel_exists_only_when_asked(cfn: dict[str, Any]) -> None:
    tunnel = [k for k in cfn["Resources"] if "Tunnel" in k or k.startswith(("Ssm", "Ec2Messages"))]
    assert len(tunnel) >= 8
    for name in tunnel:
        assert cfn["Resources"][name].get("Condition") == "WithAdminTunnel", name
    assert cfn["Parameters"]["AdminTunnel"]["Default"] == "false"
