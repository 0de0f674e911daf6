{#- Surrogate keys of catalog tables come from one sequence per table (cache 1, so the exporter can
    trust its last value), owned by the key column. A natural key seen before keeps its id; a new
    one gets the next value, so ids grow with every crawl and are never reused after a delete. -#}

{% macro id_sequence(relation) -%}
    {{ relation.schema }}.{{ relation.identifier }}_id_seq
{%- endmacro %}

{#- pre-hook: the sequence must exist before the model's select asks it for values -#}
{% macro create_id_sequence(relation) -%}
    create sequence if not exists {{ id_sequence(relation) }} as bigint cache 1
{%- endmacro %}

{#- post-hook: tie the sequence to its column (pg_get_serial_sequence finds it; a drop takes it) -#}
{% macro own_id_sequence(relation, column) -%}
    alter sequence {{ id_sequence(relation) }} owned by {{ relation }}.{{ adapter.quote(column) }}
{%- endmacro %}

{#- In a model's select: the existing id of this natural key, or the next one. The natural key
    columns of the row being selected must be reachable as `alias.column`. -#}
{% macro surrogate_id(id_column, natural_key, alias) -%}
    {%- if natural_key is string -%}{%- set natural_key = [natural_key] -%}{%- endif -%}
    {%- if is_incremental() -%}
        coalesce(
            (select existing.{{ id_column }} from {{ this }} as existing
             where {{ sync_key_match(natural_key, 'existing', alias) }}),
            nextval('{{ id_sequence(this) }}')
        )
    {%- else -%}
        nextval('{{ id_sequence(this) }}')
    {%- endif -%}
{%- endmacro %}
