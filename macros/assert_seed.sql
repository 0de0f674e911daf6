{#- Checks a seed before anything is built from it, so that a bad crawl fails with a message
    naming the file, the rows and the problem (the application tables are left as they were):
    keys that appear twice, required values missing, values outside an accepted set.
    Called at the top of each staging model with the seed's relation. The key is the seed's
    `config.meta.key` in seeds/_seeds.yml, the one declaration animedb/seeds.py reads as well. -#}
{% macro assert_seed(seed, required=[], accepted={}) -%}
  {%- if execute -%}
    {%- set file = 'seeds/' ~ seed.identifier ~ '.csv' -%}
    {%- set key = seed_key(seed) -%}
    {%- set key_list = key | join(', ') -%}

    {%- set duplicates = run_query(
        'select ' ~ key_list ~ ', count(*) as n from ' ~ seed ~ ' group by ' ~ key_list
        ~ ' having count(*) > 1 order by ' ~ key_list ~ ' limit 3') -%}
    {%- if duplicates.rows | length > 0 -%}
      {%- set examples = [] -%}
      {%- for row in duplicates.rows -%}
        {%- do examples.append('(' ~ (row.values()[:-1] | join(', ')) ~ ') ' ~ row['n'] ~ ' times') -%}
      {%- endfor -%}
      {{ exceptions.raise_compiler_error(file ~ ': duplicate key (' ~ key_list ~ '): ' ~ (examples | join('; ')) ~ '. Each key must appear once: fix the file or re-run the crawler, then dbt seed again.') }}
    {%- endif -%}

    {%- for column in required -%}
      {%- set missing = run_query('select count(*) as n from ' ~ seed ~ ' where ' ~ column ~ ' is null' ~ (" or trim(" ~ column ~ "::text) = ''")) -%}
      {%- if missing.rows[0]['n'] > 0 -%}
        {{ exceptions.raise_compiler_error(file ~ ': ' ~ missing.rows[0]['n'] ~ ' row(s) without a value in required column ' ~ column ~ '. Fill it in or drop those rows, then dbt seed again.') }}
      {%- endif -%}
    {%- endfor -%}

    {%- for column, values in accepted.items() -%}
      {%- set quoted = [] -%}
      {%- for value in values -%}{%- do quoted.append("'" ~ value ~ "'") -%}{%- endfor -%}
      {%- set outside = run_query('select distinct ' ~ column ~ ' as v from ' ~ seed ~ ' where ' ~ column ~ ' not in (' ~ (quoted | join(', ')) ~ ') order by 1 limit 5') -%}
      {%- if outside.rows | length > 0 -%}
        {{ exceptions.raise_compiler_error(file ~ ': column ' ~ column ~ ' has unknown value(s) ' ~ (outside.columns[0].values() | join(', ')) ~ '; accepted: ' ~ (values | join(', ')) ~ '.') }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro %}

{#- The key a seed declares as `config.meta.key` (a column or a list of them), from the graph -#}
{% macro seed_key(seed) -%}
  {%- set nodes = graph.nodes.values() | selectattr('resource_type', 'equalto', 'seed')
                  | selectattr('alias', 'equalto', seed.identifier) | list -%}
  {%- set key = (nodes[0].config.meta or {}).get('key') if nodes else none -%}
  {%- if not key -%}
    {{ exceptions.raise_compiler_error('seed ' ~ seed.identifier ~ ' declares no key: add `config: {meta: {key: [its key columns]}}` to it in seeds/_seeds.yml') }}
  {%- endif -%}
  {{ return([key] if key is string else key) }}
{%- endmacro %}
