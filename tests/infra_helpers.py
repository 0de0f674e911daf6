"""Helpers for the deployment's tests: the template as written and as the SAM transform turns it
into CloudFormation (offline), and the handlers and the layer build importable from infra/."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import build_layers  # infra/ (the handlers' package, the layer build) is on pytest's pythonpath
from lambda_handlers import export, generate, rds, runtime
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped]

from animedb import REPO

INFRA = REPO / "infra"
TEMPLATE = INFRA / "template.yaml"

__all__ = ["build_layers", "export", "generate", "rds", "runtime"]

# What `sam package` puts in place of the local artifacts before the transform runs.
PACKAGED_CODE = "s3://artifacts/function.zip"


def template() -> dict[str, Any]:
    """infra/template.yaml as written (short-form intrinsics become their long form)."""
    parsed: dict[str, Any] = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    return parsed


def transformed(region: str = "eu-west-1") -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of infra/template.yaml, offline."""
    packaged = copy.deepcopy(template())
    packaged["Globals"]["Function"]["CodeUri"] = PACKAGED_CODE
    for name, resource in packaged["Resources"].items():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://artifacts/{name}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    result: dict[str, Any] = translator.translate(
        packaged, parameter_values={}, get_managed_policy_map=dict
    )
    return result


def of_type(cfn: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in cfn["Resources"].items() if r["Type"] == resource_type}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies."""
    found = []
    for policy in role["Properties"].get("Policies", []):
        body = policy["PolicyDocument"]["Statement"]
        found += body if isinstance(body, list) else [body]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any) -> set[str]:
    """Logical ids a value points at (Ref, GetAtt, and ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {
                    part.split("}")[0].split(".")[0] for part in text.split("${")[1:] if "}" in part
                }
                if isinstance(inner, list):
                    found |= references(inner[1])
            else:
                found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found
