{#- Checks a seed before anything is built from it, so that a bad crawl fails with a message
    naming the file, the rows and the problem (the application tables are left as they were):
    keys that appear twice, required values missing, values outside an accepted set.
    Called at the top of each staging model with the seed's relation. The rules are the seed's
    `config.meta` in seeds/_seeds.yml (key, required, accepted), declared there only; the key is
    the one animedb/seeds.py reads as well. A unit test gives the model its rows itself: there
    is no loaded seed to check then. -#}
{% macro assert_seed(seed) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set rules = seed_rules(seed) -%}
        {%- set file = 'seeds/' ~ seed.identifier ~ '.csv' -%}
        {%- set key_list = rules['key'] | join(', ') -%}

        {%- set duplicates_query -%}
            select {{ key_list }}, count(*) as n
            from {{ seed }}
            group by {{ key_list }}
            having count(*) > 1
            order by {{ key_list }}
            limit 3
        {%- endset -%}
        {%- set duplicates = run_query(duplicates_query) -%}
        {%- if duplicates.rows | length > 0 -%}
            {%- set examples = [] -%}
            {%- for row in duplicates.rows -%}
                {%- do examples.append(
                    '(' ~ (row.values()[:-1] | join(', ')) ~ ') ' ~ row['n'] ~ ' times'
                ) -%}
            {%- endfor -%}
            {{ exceptions.raise_compiler_error(
                file ~ ': duplicate key (' ~ key_list ~ '): ' ~ (examples | join('; '))
                ~ '. Each key must appear once: fix the file or re-run the crawler,'
                ~ ' then dbt seed again.'
            ) }}
        {%- endif -%}

        {%- for column in rules['required'] -%}
            {%- set missing_query -%}
                select count(*) as n
                from {{ seed }}
                where {{ column }} is null or trim({{ column }}::text) = ''
            {%- endset -%}
            {%- set missing = run_query(missing_query).rows[0]['n'] -%}
            {%- if missing > 0 -%}
                {{ exceptions.raise_compiler_error(
                    file ~ ': ' ~ missing ~ ' row(s) without a value in required column '
                    ~ column ~ '. Fill it in or drop those rows, then dbt seed again.'
                ) }}
            {%- endif -%}
        {%- endfor -%}

        {%- for column, values in rules['accepted'].items() -%}
            {%- set outside_query -%}
                select distinct {{ column }} as v
                from {{ seed }}
                where {{ column }} not in (
                    {%- for value in values -%}
                        '{{ value }}'{{ ', ' if not loop.last else '' }}
                    {%- endfor -%}
                )
                order by 1
                limit 5
            {%- endset -%}
            {%- set outside = run_query(outside_query) -%}
            {%- if outside.rows | length > 0 -%}
                {{ exceptions.raise_compiler_error(
                    file ~ ': column ' ~ column ~ ' has unknown value(s) '
                    ~ (outside.columns[0].values() | join(', '))
                    ~ '; accepted: ' ~ (values | join(', ')) ~ '.'
                ) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- The rules a seed declares in its `config.meta`, from the graph: `key` (a column or a list of
    them; every seed must declare one), `required` (a column or a list, default none) and
    `accepted` (column: its values, default none) -#}
{% macro seed_rules(seed) -%}
    {%- set nodes = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'seed')
        | selectattr('alias', 'equalto', seed.identifier)
        | list -%}
    {%- set meta = (nodes[0].config.meta or {}) if nodes else {} -%}
    {%- set key = meta.get('key') -%}
    {%- if not key -%}
        {{ exceptions.raise_compiler_error(
            'seed ' ~ seed.identifier ~ ' declares no key: add `config: {meta: {key: [its key'
            ~ ' columns]}}` to it in seeds/_seeds.yml'
        ) }}
    {%- endif -%}
    {%- set required = meta.get('required') or [] -%}
    {{ return({
        'key': [key] if key is string else key,
        'required': [required] if required is string else required,
        'accepted': meta.get('accepted') or {}
    }) }}
{%- endmacro %}

-- sqlfluff:exclude_rules:layout.indent
-- (sqlfluff renders no macro body, and in this one, mostly Jinja blocks, it misreads the
-- whitespace between the tags: it asks for no indent on one line and for more on the next)
