{{ assert_seed(ref('mal_characters')) }}

with source as (

    select * from {{ ref('mal_characters') }}

),

renamed as (

    select
        character_id::bigint as mal_id,
        trim(name) as name

    from source

)

select * from renamed
