{{ assert_seed(ref('mal_companies')) }}

with source as (

    select * from {{ ref('mal_companies') }}

),

renamed as (

    select
        company_id::bigint as mal_id,
        trim(name) as name

    from source

)

select * from renamed
