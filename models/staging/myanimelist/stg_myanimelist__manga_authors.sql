{{ assert_seed(ref('mal_manga_authors')) }}

with source as (

    select * from {{ ref('mal_manga_authors') }}

),

manga as (

    select mal_id from {{ ref('stg_myanimelist__manga') }}

),

people as (

    select mal_id from {{ ref('stg_myanimelist__people') }}

),

renamed as (

    select
        manga_id::bigint as manga_mal_id,
        person_id::bigint as person_mal_id,
        trim(role) as role

    from source

),

-- rows naming a manga or person the crawl did not record are dropped here and counted by the
-- unresolved_seed_references test
resolved as (

    select renamed.*
    from renamed
    where exists (select 1 from manga where manga.mal_id = renamed.manga_mal_id)
        and exists (select 1 from people where people.mal_id = renamed.person_mal_id)

)

select * from resolved
