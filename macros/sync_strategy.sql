{#- The `sync` incremental strategy: bring an application table to the model's rows in place,
    never rebuilding it, so ids, foreign keys, triggers and grants survive every run.
      1. delete rows the model no longer lists, only inside `sync_delete_scope` (a column: rows
         whose value of it appears in the model, e.g. the anime the seeds speak for);
      2. update rows whose natural key matches and whose values really differ (trigger-owned audit
         columns, the surrogate key and the natural key are never written);
      3. insert rows with new natural keys, in surrogate-key order;
      4. with `sync_missing_flag` (a boolean column) instead of deleting: set it false on rows the
         model no longer lists (and the update of step 2 sets it true again if they come back);
         refused when it would flag more than a quarter of the listed rows, unless the variable
         allow_mass_delisting is true (macros/delisting_guard.sql).
    Configure with unique_key (the natural key), surrogate_key, sync_updates (false: insert-only,
    for tables exported by id), sync_delete_scope, sync_missing_flag, and sync_nullable_keys
    (natural key columns that may be null; matched null-safely, the others with plain equality
    so that the planner can use indexes and hash joins). -#}
{% macro get_incremental_sync_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- if keys is string -%}{%- set keys = [keys] -%}{%- endif -%}
    {%- if not keys -%}
        {{ exceptions.raise_compiler_error(
            "the sync strategy needs unique_key (the natural key) on " ~ target
        ) }}
    {%- endif -%}
    {%- set surrogate = config.get('surrogate_key') -%}
    {%- set frozen = keys + ['created_date', 'modified_date']
        + ([surrogate] if surrogate else []) -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- set updatable = [] -%}
    {%- for column in columns if column not in frozen -%}
        {%- do updatable.append(column) -%}
    {%- endfor -%}
    {%- set scope = config.get('sync_delete_scope') -%}
    {%- set match = sync_key_match(keys, 't', 's') -%}
    {%- set column_list = get_quoted_csv(columns) -%}

    {% if scope %}
        delete from {{ target }} as t
        where t.{{ adapter.quote(scope) }} in (
                select s.{{ adapter.quote(scope) }} from {{ source }} as s
            )
            and not exists (select 1 from {{ source }} as s where {{ match }});
    {% endif %}

    {%- set flag = config.get('sync_missing_flag') %}
    {% if flag %}
        {%- do guard_mass_delisting(target, source, flag, match) %}
        update {{ target }} as t
        set {{ adapter.quote(flag) }} = false
        where t.{{ adapter.quote(flag) }}
            and not exists (select 1 from {{ source }} as s where {{ match }});
    {% endif %}

    {% if updatable and config.get('sync_updates', true) %}
        {%- set assignments = [] -%}
        {%- set old_values = [] -%}
        {%- set new_values = [] -%}
        {%- for column in updatable -%}
            {%- do assignments.append(adapter.quote(column) ~ ' = s.' ~ adapter.quote(column)) -%}
            {%- do old_values.append('t.' ~ adapter.quote(column)) -%}
            {%- do new_values.append('s.' ~ adapter.quote(column)) -%}
        {%- endfor -%}
        {%- if updatable | length == 1 -%}
            {%- do old_values.append('null') -%}
            {%- do new_values.append('null') -%}
        {%- endif %}
        update {{ target }} as t
        set {{ assignments | join(', ') }}
        from {{ source }} as s
        where {{ match }}
            and ({{ old_values | join(', ') }}) is distinct from ({{ new_values | join(', ') }});
    {% endif %}

    insert into {{ target }} ({{ column_list }})
    select {{ column_list }}
    from {{ source }} as s
    where not exists (select 1 from {{ target }} as t where {{ match }})
    {% if surrogate %}order by s.{{ adapter.quote(surrogate) }}{% endif %};
{% endmacro %}

{#- `a.k = b.k and ...` over the natural key; null-safe for the model's sync_nullable_keys -#}
{% macro sync_key_match(keys, left, right) -%}
    {%- set nullable = config.get('sync_nullable_keys', []) -%}
    {%- for key in keys -%}
        {{ left }}.{{ adapter.quote(key) }}
        {{- ' is not distinct from ' if key in nullable else ' = ' -}}
        {{ right }}.{{ adapter.quote(key) }}
        {%- if not loop.last %} and {% endif -%}
    {%- endfor -%}
{%- endmacro %}

-- sqlfluff:exclude_rules:layout.indent
-- (sqlfluff renders no macro body, and in this one, mostly Jinja blocks, it misreads the
-- whitespace between the tags: it asks for no indent on one line and for more on the next)
