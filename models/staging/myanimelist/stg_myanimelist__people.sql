{{ assert_seed(ref('mal_people')) }}

with source as (

    select * from {{ ref('mal_people') }}

),

renamed as (

    select
        person_id::bigint as mal_id,
        trim(name) as name

    from source

)

select * from renamed
