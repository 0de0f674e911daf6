{#- Audit columns kept by the database, whoever writes: created_date is set on insert and never
    changes; modified_date is set on insert and moves only when a value really changed. Client
    values for both are overridden. Both use the transaction's start time, now(), which is what
    the exporter's watermark protocol bounds by (see docs/design.md); modified_date never goes back,
    even when a transaction that started earlier updates a row written by a later one. -#}
{#- on-run-start: the one trigger function, shared by the five audited tables -#}
{% macro audit_dates_function() -%}
    create schema if not exists app;

    create or replace function app.set_audit_dates() returns trigger
    language plpgsql as $fn$
    begin
        if tg_op = 'INSERT' then
            new.created_date := now();
            new.modified_date := now();
            return new;
        end if;
        new.created_date := old.created_date;
        new.modified_date := old.modified_date;
        if new is distinct from old then
            new.modified_date := greatest(now(), old.modified_date + interval '1 microsecond');
        end if;
        return new;
    end
    $fn$;
{%- endmacro %}

{#- post-hook of each audited model; modified_date is also the exporter's cursor, so it is
    indexed: a delta read costs what the delta holds, not what the table holds -#}
{% macro audit_trigger(relation) -%}
    create index if not exists {{ relation.identifier }}_modified_date
        on {{ relation }} (modified_date);

    create or replace trigger audit_dates
        before insert or update on {{ relation }}
        for each row execute function app.set_audit_dates();
{%- endmacro %}
