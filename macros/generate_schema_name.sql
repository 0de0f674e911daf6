{#- Schemas are named for what they hold (raw, staging, app, snapshots), not prefixed with the
    target schema: the tools and the exporter find the tables at fixed, documented names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
