with characters as (

    select * from {{ ref('stg_myanimelist__characters') }}

),

final as (

    select
        {{ surrogate_id('character_id', 'mal_id', 'characters') }} as character_id,
        characters.mal_id,
        characters.name

    from characters
    order by characters.mal_id

)

select * from final
