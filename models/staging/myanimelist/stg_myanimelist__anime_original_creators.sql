{{ assert_seed(ref('mal_anime_original_creators')) }}

with source as (

    select * from {{ ref('mal_anime_original_creators') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        person_id::bigint as person_mal_id,
        trim(role) as role

    from source

),

resolved as (

    {{ keep_resolved('renamed', {
        'anime_mal_id': ref('stg_myanimelist__anime'),
        'person_mal_id': ref('stg_myanimelist__people'),
    }) }}

)

select * from resolved
