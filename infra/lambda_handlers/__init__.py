"""AWS Lambda entry points of the generators and the exporter (infra/template.yaml).

Each handler is a thin shell around a plain function of the project (`generators.run_tick`,
`exporter.run_export`): `rds` turns the function's environment into connection settings as the
function's own database user (an IAM token per connection, TLS always), `runtime` runs the work
and reports a failure in one line with no password or token in it. Nothing here is needed to run
the tools anywhere else.
"""
