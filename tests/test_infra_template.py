"""infra/template.yaml: cfn-lint passes, and the CloudFormation the SAM transform makes of it has
the schedules, the dead-letter queue, the exporter's concurrency, least-privilege policies (each
function logs in to the database with IAM as its own user, none reads the master secret), the
Glue database the exporter commits its Iceberg tables to, a versioned and access-logged lake
bucket, an alarm whose topic CloudWatch can publish to, and a private, deletion-protected
database that the deployment promises (all offline). checkov runs in `make lint`; its skips are
checked here."""

from __future__ import annotations

import fnmatch
import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from cfnlint.config import ManualArgs  # type: ignore[import-untyped]

from exporter.catalog import NAMESPACE_VARIABLE
from exporter.maintenance import MAINTENANCE_VARIABLE, RETENTION_VARIABLE
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
# The database user each function logs in as, with an IAM token (macros/roles.sql makes them).
DATABASE_USERS = {
    "GeneratorFunction": "animedb_generator",
    "ExporterFunction": "animedb_exporter",
}
# What the exporter does in Glue: read and commit its tables, keep the lake's identity in the
# database's parameters. Never create or delete a database, never drop a table.
EXPORTER_GLUE_ACTIONS = {
    "glue:GetDatabase",
    "glue:UpdateDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
}
GLUE_ARN = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}"
LAKE_CATALOG_ARNS = [
    {"Fn::Sub": f"{GLUE_ARN}:catalog"},
    {"Fn::Sub": f"{GLUE_ARN}:database/${{LakeCatalog}}"},
    {"Fn::Sub": f"{GLUE_ARN}:table/${{LakeCatalog}}/*"},
]
# Checks that this deployment fixes and must never skip: on the lake bucket versioning and
# access logging, on the database IAM authentication.
NEVER_SKIPPED = {
    "LakeBucket": {"CKV_AWS_21", "CKV_AWS_18"},
    "Database": {"CKV_AWS_161"},
}


def _database_user_arn(user: str) -> dict[str, str]:
    return {
        "Fn::Sub": "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"
        f"${{Database.DbiResourceId}}/{user}"
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
    targets = {
        (
            references(s["Properties"]["Target"]["Arn"]).pop(),
            str(s["Properties"]["Target"]["Input"]),
        ): s
        for s in schedules.values()
    }
    expected = {
        ("GeneratorFunction", "{'Ref': 'GeneratorTick'}"): "GeneratorIntervalMinutes",
        ("ExporterFunction", "{}"): "ExporterIntervalMinutes",
        ("ExporterFunction", '{"task": "maintain"}'): "MaintenanceIntervalHours",
    }
    assert set(targets) == set(expected)
    for (function, event), interval in expected.items():
        props = targets[(function, event)]["Properties"]
        unit = "hours" if interval.endswith("Hours") else "minutes"
        assert props["ScheduleExpression"] == {"Fn::Sub": f"rate(${{{interval}}} {unit})"}
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


def test_function_roles_reach_only_their_database_user_the_lake_and_the_queue(
    cfn: dict[str, Any],
) -> None:
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
                if service == "rds-db":
                    assert action == "rds-db:connect"
                    assert resources == [_database_user_arn(DATABASE_USERS[function])]
                elif service == "s3":
                    assert function == "ExporterFunction"
                    assert references(resources) == {"LakeBucket"}
                elif service == "sqs":
                    assert action == "sqs:SendMessage"
                    assert references(resources) == {"DeadLetterQueue"}
                elif service == "glue":
                    assert function == "ExporterFunction"
                    assert resources == LAKE_CATALOG_ARNS
                else:
                    pytest.fail(f"{function} may {action}")


def test_each_function_logs_in_with_iam_as_its_own_database_user(cfn: dict[str, Any]) -> None:
    assert cfn["Resources"]["Database"]["Properties"]["EnableIAMDatabaseAuthentication"] is True
    assert len(set(DATABASE_USERS.values())) == len(FUNCTIONS)
    for function, user in DATABASE_USERS.items():
        props = cfn["Resources"][function]["Properties"]
        assert props["Environment"]["Variables"][rds.USER_VARIABLE] == user
        role = cfn["Resources"][references(props["Role"]).pop()]
        (connect,) = [
            s
            for s in statements(role)
            if any(a.startswith("rds-db:") for a in as_list(s["Action"]))
        ]
        assert as_list(connect["Action"]) == ["rds-db:connect"]
        # exactly its own user: no wildcard, not the other function's, not the master user
        assert as_list(connect["Resource"]) == [_database_user_arn(user)]
        assert "Condition" not in connect


def test_no_function_may_read_the_master_secret(cfn: dict[str, Any]) -> None:
    for name, resource in cfn["Resources"].items():
        if resource["Type"] in {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            for statement in statements(resource) + as_list(
                resource["Properties"].get("PolicyDocument", {}).get("Statement", [])
            ):
                for action in as_list(statement["Action"]):
                    assert not action.lower().startswith("secretsmanager:"), (name, action)
        if name != "Database":
            # the secret is the admin's: the stack names it in its outputs and nowhere else
            assert "MasterUserSecret" not in json.dumps(resource), name
    for function in FUNCTIONS:
        variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert not any("SECRET" in name for name in variables), variables
    assert cfn["Outputs"]["DatabaseSecretArn"]["Value"] == {
        "Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]
    }


def _lake_prefix(cfn: dict[str, Any]) -> str:
    """The key prefix of the exporter's target, s3://<bucket>/<prefix>."""
    variables = cfn["Resources"]["ExporterFunction"]["Properties"]["Environment"]["Variables"]
    target: str = variables[export.TARGET_VARIABLE]["Fn::Sub"]
    bucket, prefix = target.removeprefix("s3://").split("/", 1)
    assert bucket == "${LakeBucket}" and prefix and not prefix.endswith("/"), target
    return prefix


def test_exporter_reaches_only_the_objects_under_its_target(cfn: dict[str, Any]) -> None:
    prefix = _lake_prefix(cfn)
    s3 = [
        s
        for s in statements(cfn["Resources"]["ExporterFunctionRole"])
        if any(a.startswith("s3:") for a in as_list(s["Action"]))
    ]
    objects = [s for s in s3 if "s3:ListBucket" not in as_list(s["Action"])]
    assert [s["Resource"] for s in objects] == [{"Fn::Sub": f"${{LakeBucket.Arn}}/{prefix}/*"}]
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(objects[0]["Action"])
    assert set(objects[0]["Action"]) <= {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    }
    (listing,) = [s for s in s3 if "s3:ListBucket" in as_list(s["Action"])]
    assert as_list(listing["Action"]) == ["s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": ["LakeBucket", "Arn"]}
    # a listing that names a prefix stays under the target's (HeadBucket, which names none, and
    # S3's 404-or-403 check for a missing object are what IfExists lets through)
    ((operator, keys),) = listing["Condition"].items()
    assert operator == "StringLikeIfExists"
    assert list(keys) == ["s3:prefix"]
    assert keys["s3:prefix"] and all(
        pattern.startswith(f"{prefix}/") for pattern in as_list(keys["s3:prefix"])
    )


def test_exporter_commits_tables_in_the_lake_database_only(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["ExporterFunctionRole"]
    glue = [s for s in statements(role) if any(a.startswith("glue:") for a in as_list(s["Action"]))]
    assert len(glue) == 1
    assert set(as_list(glue[0]["Action"])) == EXPORTER_GLUE_ACTIONS
    assert len(as_list(glue[0]["Action"])) == len(EXPORTER_GLUE_ACTIONS)
    assert as_list(glue[0]["Resource"]) == LAKE_CATALOG_ARNS
    assert "Condition" not in glue[0]
    # nothing in the stack may drop the lake's tables or replace its database (the Glue crawler
    # and its role are gone: the exporter writes the tables itself)
    for name, resource in of_type(cfn, "AWS::IAM::Role").items():
        for statement in statements(resource):
            for action in as_list(statement["Action"]):
                assert not action.startswith(("glue:Delete", "glue:BatchDelete")), (name, action)
                assert action not in {"glue:CreateDatabase", "glue:*"}, (name, action)
                if action.startswith("glue:"):
                    assert name == "ExporterFunctionRole", (name, action)
        trusted = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert "glue.amazonaws.com" not in json.dumps(trusted), name


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


def test_database_is_deletion_protected_by_default(cfn: dict[str, Any]) -> None:
    database = cfn["Resources"]["Database"]
    assert database["Properties"]["DeletionProtection"] == {"Ref": "DatabaseDeletionProtection"}
    parameter = cfn["Parameters"]["DatabaseDeletionProtection"]
    assert parameter["Default"] == "true"
    assert "false" in parameter["AllowedValues"]  # the way to delete it (infra/README.md)
    assert database["DeletionPolicy"] == database["UpdateReplacePolicy"] == "Snapshot"


def test_functions_reach_s3_and_glue_through_endpoints(cfn: dict[str, Any]) -> None:
    endpoints = {
        r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]: r
        for r in of_type(cfn, "AWS::EC2::VPCEndpoint").values()
    }
    # always there: what the functions use (the tunnel's Systems Manager ones come with it);
    # no Secrets Manager endpoint, since nothing in the VPC reads a secret
    always = {service for service, r in endpoints.items() if "Condition" not in r}
    assert always == {"s3", "glue"}
    endpoints = {service: r["Properties"] for service, r in endpoints.items()}
    assert endpoints["s3"]["VpcEndpointType"] == "Gateway"
    assert references(endpoints["s3"]["PolicyDocument"]) == {"LakeBucket"}
    assert endpoints["glue"]["VpcEndpointType"] == "Interface"
    assert endpoints["glue"]["PrivateDnsEnabled"] is True
    assert references(endpoints["glue"]["SubnetIds"]) == {"PrivateSubnetA", "PrivateSubnetB"}
    # through the VPC, Glue serves the lake's database and its tables, nothing else
    (glue,) = endpoints["glue"]["PolicyDocument"]["Statement"]
    assert glue["Effect"] == "Allow"
    assert as_list(glue["Resource"]) == LAKE_CATALOG_ARNS
    assert all(a.startswith("glue:") for a in as_list(glue["Action"]))
    for function in FUNCTIONS:
        vpc = cfn["Resources"][function]["Properties"]["VpcConfig"]
        assert references(vpc["SubnetIds"]) == {"PrivateSubnetA", "PrivateSubnetB"}


def _assert_private_and_tls_only(cfn: dict[str, Any], bucket: str, policy: str) -> None:
    props = cfn["Resources"][bucket]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    body = cfn["Resources"][policy]["Properties"]
    assert body["Bucket"] == {"Ref": bucket}
    (deny,) = [s for s in body["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert (deny["Principal"], deny["Action"]) == ("*", "s3:*")
    assert references(deny["Resource"]) == {bucket} and len(deny["Resource"]) == 2


def _rules(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    return rules


def test_lake_bucket_is_encrypted_private_and_tls_only(cfn: dict[str, Any]) -> None:
    _assert_private_and_tls_only(cfn, "LakeBucket", "LakeBucketPolicy")


def test_lake_bucket_keeps_what_is_overwritten_or_deleted_for_a_while(
    cfn: dict[str, Any],
) -> None:
    lake = cfn["Resources"]["LakeBucket"]
    assert lake["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    whole_bucket = [r for r in _rules(lake) if "Prefix" not in r and "TagFilters" not in r]
    (noncurrent,) = [r for r in whole_bucket if "NoncurrentVersionExpiration" in r]
    assert noncurrent["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "LakeNoncurrentVersionDays"}
    }
    assert "ExpirationInDays" not in noncurrent  # current versions stay until the exporter acts
    days = cfn["Parameters"]["LakeNoncurrentVersionDays"]
    assert days["Type"] == "Number" and days["Default"] == 30 and days["MinValue"] >= 1
    (uploads,) = [r for r in whole_bucket if "AbortIncompleteMultipartUpload" in r]
    assert uploads["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert lake["DeletionPolicy"] == lake["UpdateReplacePolicy"] == "Retain"


def test_lake_bucket_access_is_logged_to_a_bucket_of_its_own(cfn: dict[str, Any]) -> None:
    logging = cfn["Resources"]["LakeBucket"]["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogBucket"}
    prefix = logging["LogFilePrefix"]
    assert prefix.endswith("/") and prefix != "/"
    logs = cfn["Resources"]["AccessLogBucket"]
    _assert_private_and_tls_only(cfn, "AccessLogBucket", "AccessLogBucketPolicy")
    # server access logs can be delivered to an SSE-S3 bucket only, not SSE-KMS
    (encryption,) = logs["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "LoggingConfiguration" not in logs["Properties"]  # it would log its own deliveries
    assert "ObjectLockEnabled" not in logs["Properties"]  # a log target may not have Object Lock
    assert logs["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    expiring = [r for r in _rules(logs) if "ExpirationInDays" in r]
    assert [r["ExpirationInDays"] for r in expiring] == [{"Ref": "AccessLogRetentionDays"}]
    assert "NoncurrentVersionExpiration" in expiring[0]
    assert any("AbortIncompleteMultipartUpload" in r for r in _rules(logs))
    assert logs["DeletionPolicy"] == "Retain"
    # S3's log delivery may write under the lake's prefix, for the lake bucket of this account
    # only (AWS's recommended policy, against the confused deputy); nobody else is allowed
    policy = cfn["Resources"]["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert as_list(allow["Action"]) == ["s3:PutObject"]
    assert allow["Resource"] == {"Fn::Sub": f"${{AccessLogBucket.Arn}}/{prefix}*"}
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["LakeBucket", "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


def test_the_failed_runs_alarm_can_reach_its_topic(
    cfn: dict[str, Any], sam: dict[str, Any]
) -> None:
    resources = cfn["Resources"]
    alarm = resources["FailedRunsAlarm"]["Properties"]
    assert alarm["AlarmActions"] == {
        "Fn::If": ["WithAlarmEmail", [{"Ref": "FailedRunsTopic"}], {"Ref": "AWS::NoValue"}]
    }
    alarm_arn = (
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
        + alarm["AlarmName"]["Fn::Sub"]
    )
    # CloudWatch cannot use the AWS managed alias/aws/sns key: the topic has a key of its own
    assert "alias/aws/sns" not in json.dumps(sam)
    topic = resources["FailedRunsTopic"]
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True

    def from_the_alarms(statements: list[dict[str, Any]]) -> dict[str, Any]:
        (statement,) = [
            s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        ]
        assert statement["Effect"] == "Allow"
        condition = statement["Condition"]
        assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        pattern = condition["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
        assert fnmatch.fnmatchcase(alarm_arn, pattern), (alarm_arn, pattern)
        assert pattern.startswith("arn:${AWS::Partition}:cloudwatch:${AWS::Region}:")
        return statement

    use = from_the_alarms(key["Properties"]["KeyPolicy"]["Statement"])
    assert set(as_list(use["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = of_type(cfn, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": "FailedRunsTopic"}]
    publish = from_the_alarms(policy["Properties"]["PolicyDocument"]["Statement"])
    assert as_list(publish["Action"]) == ["sns:Publish"]
    assert publish["Resource"] == {"Ref": "FailedRunsTopic"}
    for name in ("AlarmTopicKey", "FailedRunsTopic", *of_type(cfn, "AWS::SNS::TopicPolicy")):
        assert resources[name]["Condition"] == "WithAlarmEmail", name


def test_checkov_skips_say_why_and_spare_versioning_logging_and_iam_auth(
    sam: dict[str, Any],
) -> None:
    skipped = {}
    for name, resource in sam["Resources"].items():
        skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            assert set(skip) == {"id", "comment"}, (name, skip)
            assert skip["id"].startswith("CKV_") and skip["comment"].strip(), (name, skip)
        skipped[name] = {skip["id"] for skip in skips}
    for name, never in NEVER_SKIPPED.items():
        assert not skipped[name] & never, (name, skipped[name] & never)


def test_functions_run_the_handlers_of_the_package(
    cfn: dict[str, Any], sam: dict[str, Any]
) -> None:
    assert sam["Globals"]["Function"]["Runtime"] == "python3.12"
    assert sam["Globals"]["Function"]["CodeUri"] == "build/function.zip"
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) == {rds.HOST_VARIABLE, rds.PORT_VARIABLE, rds.NAME_VARIABLE}
    assert rds.SSLMODE_OVERRIDE_VARIABLE not in json.dumps(cfn)
    expected = {
        "GeneratorFunction": {rds.USER_VARIABLE: DATABASE_USERS["GeneratorFunction"]},
        "ExporterFunction": {
            rds.USER_VARIABLE: DATABASE_USERS["ExporterFunction"],
            export.TARGET_VARIABLE: {"Fn::Sub": "s3://${LakeBucket}/lake"},
            NAMESPACE_VARIABLE: {"Ref": "LakeCatalog"},
            RETENTION_VARIABLE: {"Ref": "LakeRetention"},
            MAINTENANCE_VARIABLE: {"Ref": "LakeMaintenance"},
        },
    }
    for function, own in expected.items():
        environment = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert {k: v for k, v in environment.items() if k not in variables} == own
        assert {k: environment[k] for k in variables} == variables
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


def test_the_lake_is_an_iceberg_namespace_the_exporter_fills(
    cfn: dict[str, Any], sam: dict[str, Any]
) -> None:
    catalog = cfn["Resources"]["LakeCatalog"]
    assert catalog["Type"] == "AWS::Glue::Database"
    assert catalog["Properties"]["CatalogId"] == {"Ref": "AWS::AccountId"}
    # no LocationUri: the tables live under the exporter's target, <target>/<namespace>.db/<table>
    assert set(catalog["Properties"]["DatabaseInput"]) == {"Name", "Description"}
    # the exporter creates and commits the tables itself; nothing crawls or declares them
    kinds = {r["Type"] for r in cfn["Resources"].values()}
    assert not kinds & {"AWS::Glue::Crawler", "AWS::Glue::Table", "AWS::Glue::Trigger"}
    assert not any("Crawler" in name for name in (*sam["Parameters"], *sam["Outputs"]))
    assert not any("Crawler" in name for name in sam.get("Conditions", {}))
    # the exporter's Iceberg namespace (ANIMEDB_NAMESPACE) is the database it may write
    variables = cfn["Resources"]["ExporterFunction"]["Properties"]["Environment"]["Variables"]
    assert variables[NAMESPACE_VARIABLE] == {"Ref": "LakeCatalog"}
    assert sam["Outputs"]["GlueDatabaseName"]["Value"] == {"Ref": "LakeCatalog"}
    assert cfn["Resources"]["LakeQueries"]["Type"] == "AWS::Athena::WorkGroup"


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
