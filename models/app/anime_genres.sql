with links as (

    select * from {{ ref('stg_myanimelist__anime_genres') }}

),

linked as (

    {{ resolve_ends('links', {
        'anime_mal_id': [ref('anime'), 'anime_id'],
        'genre_mal_id': [ref('genres'), 'genre_id'],
    }) }}

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
