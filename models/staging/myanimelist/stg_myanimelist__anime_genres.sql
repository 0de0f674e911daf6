{{ assert_seed(ref('mal_anime_genres')) }}

with source as (

    select * from {{ ref('mal_anime_genres') }}

),

anime as (

    select mal_id from {{ ref('stg_myanimelist__anime') }}

),

genres as (

    select mal_id from {{ ref('stg_myanimelist__genres') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        genre_id::bigint as genre_mal_id

    from source

),

-- rows naming an anime or genre the crawl did not record are dropped here and counted by the
-- unresolved_seed_references test
resolved as (

    select renamed.*
    from renamed
    where exists (select 1 from anime where anime.mal_id = renamed.anime_mal_id)
        and exists (select 1 from genres where genres.mal_id = renamed.genre_mal_id)

)

select * from resolved
