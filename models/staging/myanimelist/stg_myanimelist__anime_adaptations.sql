{{ assert_seed(ref('mal_anime_adaptations')) }}

with source as (

    select * from {{ ref('mal_anime_adaptations') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        manga_id::bigint as manga_mal_id

    from source

),

resolved as (

    {{ keep_resolved('renamed', {
        'anime_mal_id': ref('stg_myanimelist__anime'),
        'manga_mal_id': ref('stg_myanimelist__manga'),
    }) }}

)

select * from resolved
