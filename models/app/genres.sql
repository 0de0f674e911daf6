with genres as (

    select * from {{ ref('stg_myanimelist__genres') }}

),

final as (

    select
        {{ surrogate_id('genre_id', 'mal_id', 'genres') }} as genre_id,
        genres.mal_id,
        genres.name,
        genres.kind

    from genres
    order by genres.mal_id

)

select * from final
