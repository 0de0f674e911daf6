{{ assert_seed(ref('mal_anime_companies')) }}

with source as (

    select * from {{ ref('mal_anime_companies') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        company_id::bigint as company_mal_id,
        role

    from source

),

resolved as (

    {{ keep_resolved('renamed', {
        'anime_mal_id': ref('stg_myanimelist__anime'),
        'company_mal_id': ref('stg_myanimelist__companies'),
    }) }}

)

select * from resolved
