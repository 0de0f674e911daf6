{#- A bridge names its ends by MyAnimeList id. In staging, a bridge keeps only the rows whose ends
    the crawl recorded (keep_resolved); the application tables of companies and people hold those
    a bridge names in their capacity (named_in); an application bridge trades each end for the
    surrogate id of its application table (resolve_ends). Each renders a select for a model's
    CTE, laid out for the CTE's indent. -#}

{#- Rows naming something the crawl did not record (an anime, genre, company, person, character or
    manga without its own row, e.g. a manga whose page was not crawled) are dropped here, so that
    every reference downstream resolves, and counted by the unresolved_seed_references test, so
    that what a crawl could not use is reported instead of vanishing. `references` maps each end
    column of `rows` to the staging model, keyed by mal_id, that must hold it. -#}
{% macro keep_resolved(rows, references) -%}
    select {{ rows }}.*
    from {{ rows }}
    where
    {%- for column, model in references.items() %}
        {{ 'and ' if not loop.first }}exists (
            select 1 from {{ model }} as known
            where known.mal_id = {{ rows }}.{{ column }}
        )
    {%- endfor %}
{%- endmacro %}

{#- The rows of `rows` (keyed by mal_id) that `bridge` names in its `column`: the studios among the
    companies, the voice actors among the people. -#}
{% macro named_in(rows, bridge, column) -%}
    select {{ rows }}.*
    from {{ rows }}
    where exists (
        select 1 from {{ bridge }} as naming
        where naming.{{ column }} = {{ rows }}.mal_id
    )
{%- endmacro %}

{#- `ends` maps each end column of `rows` to its application table and that table's surrogate id
    column, [table, id column], joined as `<id column>s`; `columns` of `rows` come along after the
    ids. Staging kept only resolvable rows, so the inner joins lose none. -#}
{% macro resolve_ends(rows, ends, columns=[]) -%}
    select
    {%- for column, (table, id_column) in ends.items() %}
        {{ id_column }}s.{{ id_column }}{{ ',' if not loop.last or columns }}
    {%- endfor %}
    {%- for column in columns %}
        {{ rows }}.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}

    from {{ rows }}
    {%- for column, (table, id_column) in ends.items() %}
    join {{ table }} as {{ id_column }}s on {{ id_column }}s.mal_id = {{ rows }}.{{ column }}
    {%- endfor %}
{%- endmacro %}
