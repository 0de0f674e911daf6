{{ assert_seed(ref('mal_anime_original_creators')) }}

with source as (

    select * from {{ ref('mal_anime_original_creators') }}

),

anime as (

    select mal_id from {{ ref('stg_myanimelist__anime') }}

),

people as (

    select mal_id from {{ ref('stg_myanimelist__people') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        person_id::bigint as person_mal_id,
        trim(role) as role

    from source

),

-- rows naming an anime or person the crawl did not record are dropped here and counted by the
-- unresolved_seed_references test
resolved as (

    select renamed.*
    from renamed
    where exists (select 1 from anime where anime.mal_id = renamed.anime_mal_id)
        and exists (select 1 from people where people.mal_id = renamed.person_mal_id)

)

select * from resolved
