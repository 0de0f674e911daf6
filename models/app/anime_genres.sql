with links as (

    select * from {{ ref('stg_myanimelist__anime_genres') }}

),

anime as (

    select
        anime_id,
        mal_id
    from {{ ref('anime') }}

),

genres as (

    select
        genre_id,
        mal_id
    from {{ ref('genres') }}

),

linked as (

    select
        anime.anime_id,
        genres.genre_id

    from links
    join anime on anime.mal_id = links.anime_mal_id
    join genres on genres.mal_id = links.genre_mal_id

),

final as (

    select
        {{ surrogate_id('anime_genre_id', ['anime_id', 'genre_id'], 'linked') }} as anime_genre_id,
        linked.anime_id,
        linked.genre_id

    from linked
    order by linked.anime_id, linked.genre_id

)

select * from final
