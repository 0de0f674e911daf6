{{ assert_seed(ref('mal_genres')) }}

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
