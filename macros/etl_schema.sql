{#- The exporter's metadata lives in schema etl and is created here, before any model runs
    (on-run-start), so that the app tables' delete triggers always have a tombstone table to
    write to. Re-running is safe: nothing is dropped, truncated or reset. The exporter's protocol
    (DESIGN.md) builds on exactly these tables. -#}
{% macro create_etl_schema() -%}
  create schema if not exists etl;

  create table if not exists etl.tombstones (
      tombstone_id bigint generated always as identity primary key,
      table_name text not null,
      key_value bigint not null,
      deleted_at timestamptz not null default now()
  );
  create index if not exists tombstones_table_name_key_value on etl.tombstones (table_name, key_value);

  create table if not exists etl.watermarks (
      watermark_id bigint generated always as identity primary key,
      table_name text not null unique,
      load_type text not null check (load_type in ('id', 'modified')),
      key_column text not null,
      cursor_column text not null,
      max_id bigint not null default 0 check (max_id >= 0),
      max_modified timestamptz not null default '1970-01-01 00:00:00+00',
      last_run_id bigint,
      last_export_at timestamptz,
      rows_exported bigint not null default 0 check (rows_exported >= 0),
      check (load_type = 'modified' or cursor_column = key_column)
  );

  create table if not exists etl.export_runs (
      run_id bigint generated always as identity primary key,
      status text not null default 'pending' check (status in ('pending', 'committed', 'abandoned')),
      target text not null,
      bound_time timestamptz not null,
      windows jsonb not null,
      started_at timestamptz not null default now(),
      committed_at timestamptz,
      manifest_uri text,
      rows_exported bigint check (rows_exported >= 0),
      check ((status = 'committed') = (committed_at is not null))
  );
  create unique index if not exists export_runs_one_pending on etl.export_runs ((true)) where status = 'pending';
{%- endmacro %}

{#- One watermark row per exported model (config.meta.export) that exists in the database, plus
    the tombstones. Existing rows are never touched: a watermark only moves through the exporter. -#}
{% macro register_exported_tables() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set rows = [] -%}
  {%- for node in graph.nodes.values() | sort(attribute='name') -%}
    {%- set export = (node.config.meta or {}).get('export') -%}
    {%- if node.resource_type == 'model' and export -%}
      {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
      {%- if relation is not none -%}
        {%- set cursor = export.get('cursor', export['key']) -%}
        {%- do rows.append("('" ~ node.schema ~ "." ~ node.alias ~ "', '" ~ export['load_type'] ~ "', '" ~ export['key'] ~ "', '" ~ cursor ~ "')") -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {%- do rows.append("('etl.tombstones', 'id', 'tombstone_id', 'tombstone_id')") -%}
  insert into etl.watermarks (table_name, load_type, key_column, cursor_column)
  values {{ rows | join(', ') }}
  on conflict (table_name) do nothing
{%- endmacro %}
