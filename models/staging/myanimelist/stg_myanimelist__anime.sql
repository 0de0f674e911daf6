{{ assert_seed(ref('mal_anime')) }}

with source as (

    select * from {{ ref('mal_anime') }}

),

renamed as (

    select
        anime_id::bigint as mal_id,
        trim(title) as title,
        nullif(trim(title_english), '') as title_english,
        nullif(trim(title_japanese), '') as title_japanese,
        nullif(trim(type), '') as media_type,
        episodes::integer as episodes,
        nullif(trim(status), '') as airing_status,
        aired_from::date as aired_from,
        aired_to::date as aired_to,
        lower(nullif(trim(season), '')) as season,
        season_year::integer as season_year,
        nullif(trim(source), '') as source_material,
        duration_minutes::integer as duration_minutes,
        nullif(trim(age_rating), '') as age_rating,
        score::numeric(4, 2) as score,
        scored_by::bigint as scored_by,
        rank::integer as rank,
        popularity::integer as popularity,
        members::bigint as members,
        favorites::bigint as favorites

    from source

)

select * from renamed
