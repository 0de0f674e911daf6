{{ assert_seed(ref('mal_anime_adaptations')) }}

with source as (

    select * from {{ ref('mal_anime_adaptations') }}

),

anime as (

    select mal_id from {{ ref('stg_myanimelist__anime') }}

),

manga as (

    select mal_id from {{ ref('stg_myanimelist__manga') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        manga_id::bigint as manga_mal_id

    from source

),

-- adaptations of a manga whose page was not crawled are dropped here and counted by the
-- unresolved_seed_references test
resolved as (

    select renamed.*
    from renamed
    where exists (select 1 from anime where anime.mal_id = renamed.anime_mal_id)
        and exists (select 1 from manga where manga.mal_id = renamed.manga_mal_id)

)

select * from resolved
