with anime as (

    select * from {{ ref('stg_myanimelist__anime') }}

),

final as (

    select
        {{ surrogate_id('anime_id', 'mal_id', 'anime') }} as anime_id,
        anime.mal_id,
        anime.title,
        anime.title_english,
        anime.title_japanese,
        anime.media_type,
        anime.episodes,
        anime.airing_status,
        anime.aired_from,
        anime.aired_to,
        anime.season,
        anime.season_year,
        anime.source_material,
        anime.duration_minutes,
        anime.age_rating,
        anime.score,
        anime.scored_by,
        anime.rank,
        anime.popularity,
        anime.members,
        anime.favorites,
        true as is_listed,
        now() as created_date,
        now() as modified_date

    from anime
    order by anime.mal_id

)

select * from final
