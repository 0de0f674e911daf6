{{ assert_seed(ref('mal_anime_companies')) }}

with source as (

    select * from {{ ref('mal_anime_companies') }}

),

anime as (

    select mal_id from {{ ref('stg_myanimelist__anime') }}

),

companies as (

    select mal_id from {{ ref('stg_myanimelist__companies') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        company_id::bigint as company_mal_id,
        role

    from source

),

-- rows naming an anime or company the crawl did not record are dropped here and counted by the
-- unresolved_seed_references test
resolved as (

    select renamed.*
    from renamed
    where exists (select 1 from anime where anime.mal_id = renamed.anime_mal_id)
        and exists (select 1 from companies where companies.mal_id = renamed.company_mal_id)

)

select * from resolved
