{#- The exporter's metadata lives in schema etl and is created here, before any model runs
    (on-run-start), so that the app tables' delete triggers always have a tombstone table to
    write to. Re-running is safe: nothing is dropped, truncated or reset. The exporter's protocol
    (docs/design.md) builds on exactly these tables. -#}
{% macro create_etl_schema() -%}
    create schema if not exists etl;

    create table if not exists etl.tombstones (
        tombstone_id bigint generated always as identity primary key,
        table_name text not null,
        key_value bigint not null,
        deleted_at timestamptz not null default now()
    );
    create index if not exists tombstones_table_name_key_value
        on etl.tombstones (table_name, key_value);

    {#- Before the Iceberg lake, watermarks were global (one row per table); they are kept aside
        under another name, because a lake of that layout cannot be continued anyway. -#}
    do $migrate$
    begin
        if to_regclass('etl.watermarks') is not null and not exists (
            select from pg_attribute
            where attrelid = to_regclass('etl.watermarks')
                and attname = 'target'
                and not attisdropped
        ) then
            alter table etl.watermarks rename to watermarks_before_iceberg;
        end if;
    end
    $migrate$;

    create table if not exists etl.exported_tables (
        table_name text primary key,
        load_type text not null check (load_type in ('id', 'modified')),
        key_column text not null,
        cursor_column text not null,
        check (load_type = 'modified' or cursor_column = key_column)
    );

    {#- One row per target and exported table; a target without rows starts with a full load. -#}
    create table if not exists etl.watermarks (
        target text not null,
        table_name text not null references etl.exported_tables (table_name) on delete cascade,
        max_id bigint not null default 0 check (max_id >= 0),
        max_modified timestamptz not null default '1970-01-01 00:00:00+00',
        last_run_id bigint,
        last_export_at timestamptz,
        rows_exported bigint not null default 0 check (rows_exported >= 0),
        primary key (target, table_name)
    );

    create table if not exists etl.export_runs (
        run_id bigint generated always as identity primary key,
        status text not null default 'pending'
            check (status in ('pending', 'committed', 'abandoned')),
        target text not null,
        bound_time timestamptz not null,
        windows jsonb not null,
        started_at timestamptz not null default now(),
        committed_at timestamptz,
        manifest_uri text,
        rows_exported bigint check (rows_exported >= 0),
        check ((status = 'committed') = (committed_at is not null))
    );
    create unique index if not exists export_runs_one_pending
        on etl.export_runs ((true)) where status = 'pending';

    {#- Which database this is, for the lake to refuse another one's exports: the cluster's
        system identifier needs a right the exporter does not hold, so a definer function gives
        just that and nothing else. -#}
    create or replace function etl.source_identity(
        out system_identifier text, out database_name text
    )
    language sql stable security definer set search_path = pg_catalog, pg_temp as $fn$
        select
            (select s.system_identifier::text from pg_control_system() as s),
            current_database()::text
    $fn$;
    revoke execute on function etl.source_identity() from public;

    {#- The watermark bound: the start of the oldest transaction still open in a client session
        other than the exporter's, with its pid, name and state for the message, and nothing
        else (no query text, no settings). Its owner, the user that runs dbt, reads every
        session's statistics; the exporter, which may only call this, reads none.
        The exporter's own sessions are those logged in as animedb_exporter (macros/roles.sql):
        pg_stat_activity.usesysid is the role a session authenticated as, which neither SET ROLE
        nor application_name changes, and that role may write no exported table, so leaving its
        sessions out can hide no row. A name is anyone's to choose: it proves nothing. -#}
    create or replace function etl.oldest_open_transaction(
        out pid integer, out application_name text, out state text, out xact_start timestamptz)
    language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $fn$
    begin
        if not pg_has_role(current_user, 'pg_read_all_stats', 'usage') then
            raise exception 'etl.oldest_open_transaction() cannot see other sessions'' transactions: its owner % needs pg_read_all_stats (an administrator must run GRANT pg_read_all_stats TO %, then dbt build again)', current_user, current_user
                using errcode = 'insufficient_privilege';
        end if;
        select a.pid, a.application_name, a.state, a.xact_start
        into pid, application_name, state, xact_start
        from pg_stat_activity as a
        where a.backend_type = 'client backend'
          and a.xact_start is not null
          and a.pid <> pg_backend_pid()
          and a.usesysid is distinct from to_regrole('animedb_exporter')::oid
        order by a.xact_start
        limit 1;
    end
    $fn$;
    revoke execute on function etl.oldest_open_transaction() from public;
    do $stats$
    begin
        if not pg_has_role(current_user, 'pg_read_all_stats', 'usage') then
            execute format('grant pg_read_all_stats to %I', current_user);
        end if;
    exception when insufficient_privilege then
        raise warning 'the exporter''s watermark bound needs its owner % to read all sessions'' statistics: an administrator must run GRANT pg_read_all_stats TO %', current_user, current_user;
    end
    $stats$;

    {#- The files a run has written, chunk by chunk: a resumed run keeps those whose checksum
        still matches, so a first load of any size completes across several invocations. -#}
    create table if not exists etl.export_chunks (
        run_id bigint not null references etl.export_runs (run_id) on delete cascade,
        table_name text not null,
        chunk integer not null,
        key_lo bigint,
        key_hi bigint,
        files jsonb,
        rows bigint check (rows >= 0),
        primary key (run_id, table_name, chunk)
    );

    {#- The source columns (name, type, typmod) each table had when a run last committed it:
        a table whose columns changed is touched by the next run even without new rows. -#}
    alter table etl.watermarks add column if not exists source_columns text;

    {#- The files maintenance wrote (compactions), with their size and SHA-256, for `verify`:
        a run's own files are recorded in etl.export_chunks. The orphan sweep drops the rows of
        the files it deletes. -#}
    create table if not exists etl.lake_files (
        location text primary key,
        target text not null,
        bytes bigint not null check (bytes >= 0),
        sha256 text not null,
        recorded_at timestamptz not null default now()
    );

    {#- When maintenance last looked at each lake table of a target, and last swept it for
        orphan files: work that is due by time, spread over runs. -#}
    create table if not exists etl.lake_maintenance (
        target text not null,
        lake_table text not null,
        checked_at timestamptz,
        swept_at timestamptz,
        primary key (target, lake_table)
    );
{%- endmacro %}

{#- One row per exported model (config.meta.export) that exists in the database, plus the
    tombstones. Existing rows are never touched; watermarks per target belong to the exporter. -#}
{% macro register_exported_tables() -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set rows = [] -%}
    {%- for node in graph.nodes.values() | sort(attribute='name') -%}
        {%- set export = (node.config.meta or {}).get('export') -%}
        {%- if node.resource_type == 'model' and export -%}
            {%- set relation = adapter.get_relation(
                database=node.database, schema=node.schema, identifier=node.alias
            ) -%}
            {%- if relation is not none -%}
                {%- set cursor = export.get('cursor', export['key']) -%}
                {%- do rows.append(
                    "('" ~ node.schema ~ "." ~ node.alias ~ "', '" ~ export['load_type'] ~ "', '"
                    ~ export['key'] ~ "', '" ~ cursor ~ "')"
                ) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do rows.append("('etl.tombstones', 'id', 'tombstone_id', 'tombstone_id')") -%}
    insert into etl.exported_tables (table_name, load_type, key_column, cursor_column)
    values {{ rows | join(', ') }}
    on conflict (table_name) do nothing
{%- endmacro %}
