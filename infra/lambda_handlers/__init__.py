"""AWS Lambda entry points of the generators and the exporter (infra/template.yaml).

Each handler is a thin shell around a plain function of the project (`generators.run_tick`,
`exporter.run_export`): `rds` turns the function's environment and the RDS-managed secret into
connection settings (TLS always), `runtime` runs the work and reports a failure in one line with
no secret in it. Nothing here is needed to run the tools anywhere else.
"""
