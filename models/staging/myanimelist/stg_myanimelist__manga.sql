{{ assert_seed(ref('mal_manga')) }}

with source as (

    select * from {{ ref('mal_manga') }}

),

renamed as (

    select
        manga_id::bigint as mal_id,
        trim(title) as title,
        nullif(trim(type), '') as media_type

    from source

)

select * from renamed
