{#- Refuses a sync that would flag more than a quarter of a table's listed rows as gone (step 4
    of the sync strategy, `sync_missing_flag`): a crawl that lost pages or a seed cut short looks
    just like a mass delisting, and would silently take those anime off the catalog. Runs before
    the table changes; a table with no listed rows (a first build) is never refused. The dbt
    variable allow_mass_delisting (dbt_project.yml, default false) lets an intended one through. -#}
{% macro guard_mass_delisting(target, source, flag, match) %}
    {%- set counts_query -%}
        select
            count(*) as listed,
            count(*) filter (where not exists (select 1 from {{ source }} as s where {{ match }}))
                as leaving
        from {{ target }} as t
        where t.{{ adapter.quote(flag) }}
    {%- endset -%}
    {%- set counts = run_query(counts_query) -%}
    {%- set listed = counts.rows[0]['listed'] | int -%}
    {%- set leaving = counts.rows[0]['leaving'] | int -%}
    {%- set allowed = var('allow_mass_delisting') | string | lower in ['true', '1', 'yes'] -%}
    {%- if leaving * 4 > listed and not allowed -%}
        {{ exceptions.raise_compiler_error(
            target.schema ~ '.' ~ target.identifier ~ ': this build would delist ' ~ leaving
            ~ ' of its ' ~ listed ~ ' listed rows (more than a quarter), as a crawl that lost'
            ~ ' pages would; check the seeds, or if the delisting is meant, allow it with'
            ~ ' --vars \'{allow_mass_delisting: true}\''
        ) }}
    {%- endif -%}
{% endmacro %}
