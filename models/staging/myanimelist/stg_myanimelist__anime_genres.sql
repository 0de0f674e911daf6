{{ assert_seed(ref('mal_anime_genres')) }}

with source as (

    select * from {{ ref('mal_anime_genres') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        genre_id::bigint as genre_mal_id

    from source

),

resolved as (

    {{ keep_resolved('renamed', {
        'anime_mal_id': ref('stg_myanimelist__anime'),
        'genre_mal_id': ref('stg_myanimelist__genres'),
    }) }}

)

select * from resolved
