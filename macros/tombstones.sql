{#- Hard deletes are facts the lake must learn: a statement-level trigger (one insert per delete
    statement, whatever its size) copies the deleted keys into etl.tombstones, which the exporter
    ships like any table exported by id. SECURITY DEFINER: the generator role may delete its own
    rows without being allowed to write the ETL schema. TRUNCATE would bypass it, so it is
    refused on exported tables.

    An update of a primary key is the delete of the old key plus a new row: a row trigger, fired
    only when the key changes, records the old key's tombstone after the update, and the audit
    trigger moves the row's modified_date, so the new key is exported as a new row. A table
    exported by id has no such cursor (its key is the cursor: a row whose key moved below the
    watermark would never be seen), so there the same function, fired before the update, refuses
    it with a message saying what to do instead. -#}
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

    create or replace function etl.record_key_change() returns trigger
    language plpgsql security definer set search_path = pg_catalog, pg_temp as $fn$
    declare
        relation text := tg_table_schema || '.' || tg_table_name;
    begin
        if tg_when = 'BEFORE' then
            -- before the row changes, so before any foreign key reacts to it
            if exists (
                select from etl.exported_tables where table_name = relation and load_type = 'id'
            ) then
                raise exception 'update of key % refused on %: the table is exported by its key, so a changed key would never reach the lake', tg_argv[0], relation
                    using errcode = 'P0001',
                    hint = 'insert the row under its new key and delete the old one';
            end if;
            return new;
        end if;
        insert into etl.tombstones (table_name, key_value)
        values (relation, (to_jsonb(old) ->> tg_argv[0])::bigint);
        return null;
    end
    $fn$;
    revoke execute on function etl.record_key_change() from public;

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

    create or replace trigger refuse_key_change
        before update on {{ relation }}
        for each row
        when (old.{{ key_column }} is distinct from new.{{ key_column }})
        execute function etl.record_key_change('{{ key_column }}');

    create or replace trigger record_key_change
        after update on {{ relation }}
        for each row
        when (old.{{ key_column }} is distinct from new.{{ key_column }})
        execute function etl.record_key_change('{{ key_column }}');

    create or replace trigger refuse_truncate
        before truncate on {{ relation }}
        for each statement execute function etl.refuse_truncate();
{%- endmacro %}
