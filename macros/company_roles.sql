{#- Studios and licensors are MyAnimeList companies seen in one role; both tables, and their
    bridges to anime, are built the same way from the companies seed and its role bridge. -#}

{% macro companies_in_role(role) -%}
with companies as (

    select * from {{ ref('stg_myanimelist__companies') }}

),

roles as (

    select * from {{ ref('stg_myanimelist__anime_companies') }}
    where role = '{{ role }}'

),

in_role as (

    {{ named_in('companies', 'roles', 'company_mal_id') }}

),

final as (

    select
        {{ surrogate_id(role ~ '_id', 'mal_id', 'in_role') }} as {{ role }}_id,
        in_role.mal_id,
        in_role.name

    from in_role
    order by in_role.mal_id

)

select * from final
{%- endmacro %}

{% macro anime_companies_in_role(role, companies_model) -%}
with roles as (

    select * from {{ ref('stg_myanimelist__anime_companies') }}
    where role = '{{ role }}'

),

linked as (

    {{ resolve_ends('roles', {
        'anime_mal_id': [ref('anime'), 'anime_id'],
        'company_mal_id': [ref(companies_model), role ~ '_id'],
    }) }}

),

final as (

    select
        {{ surrogate_id('anime_' ~ role ~ '_id', ['anime_id', role ~ '_id'], 'linked') }}
            as anime_{{ role }}_id,
        linked.anime_id,
        linked.{{ role }}_id

    from linked
    order by linked.anime_id, linked.{{ role }}_id

)

select * from final
{%- endmacro %}
