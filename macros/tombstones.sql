{#- Hard deletes are facts the lake must learn: a statement-level trigger (one insert per delete
    statement, whatever its size) copies the deleted keys into etl.tombstones, which the exporter
    ships like any table exported by id. SECURITY DEFINER: the generator role may delete its own
    rows without being allowed to write the ETL schema. TRUNCATE would bypass it, so it is
    refused on exported tables. -#}
{#- on-run-start, after the etl schema: the trigger functions shared by all exported tables -#}
{% macro tombstone_functions() -%}
    create or replace function etl.record_tombstones() returns trigger
    language plpgsql security definer set search_path = pg_catalog, pg_temp as $fn$
    begin
        insert into etl.tombstones (table_name, key_value)
        select tg_table_schema || '.' || tg_table_name, k.key_value
        from (select (to_jsonb(o) ->> tg_argv[0])::bigint as key_value from old_rows as o) as k
        -- ids in key order, whatever order the delete produced: the same deletes, the same ids
        order by k.key_value;
        return null;
    end
    $fn$;
    {#- a trigger fires without EXECUTE; only creating one needs it, so nobody else may -#}
    revoke execute on function etl.record_tombstones() from public;

    create or replace function etl.refuse_truncate() returns trigger
    language plpgsql as $fn$
    begin
        raise exception 'truncate refused on %.%: rows of exported tables leave by delete only, so that the lake learns of it through etl.tombstones', tg_table_schema, tg_table_name
            using errcode = 'P0001';
    end
    $fn$;
{%- endmacro %}

{#- post-hook of each exported model -#}
{% macro tombstone_trigger(relation, key_column) -%}
    create or replace trigger record_tombstones
        after delete on {{ relation }}
        referencing old table as old_rows
        for each statement execute function etl.record_tombstones('{{ key_column }}');

    create or replace trigger refuse_truncate
        before truncate on {{ relation }}
        for each statement execute function etl.refuse_truncate();
{%- endmacro %}
