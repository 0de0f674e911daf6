{{ assert_seed(ref('mal_genres'), required=['genre_id', 'name', 'kind'],
               accepted={'kind': ['genre', 'explicit_genre', 'theme', 'demographic']}) }}

with source as (

    select * from {{ ref('mal_genres') }}

),

renamed as (

    select
        genre_id::bigint as mal_id,
        trim(name) as name,
        kind

    from source

)

select * from renamed
