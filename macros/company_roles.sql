{#- Studios and licensors are MyAnimeList companies seen in one role; both tables, and their
    bridges to anime, are built the same way from the companies seed and its role bridge. -#}

{% macro companies_in_role(role) -%}
with companies as (

    select * from {{ ref('stg_myanimelist__companies') }}

),

roles as (

    select * from {{ ref('stg_myanimelist__anime_companies') }}

),

in_role as (

    select companies.*
    from companies
    where exists (
        select 1 from roles
        where roles.company_mal_id = companies.mal_id and roles.role = '{{ role }}'
    )

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

anime as (

    select
        anime_id,
        mal_id
    from {{ ref('anime') }}

),

companies as (

    select
        {{ role }}_id,
        mal_id
    from {{ ref(companies_model) }}

),

linked as (

    select
        anime.anime_id,
        companies.{{ role }}_id

    from roles
    join anime on anime.mal_id = roles.anime_mal_id
    join companies on companies.mal_id = roles.company_mal_id

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
