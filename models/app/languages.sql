with spoken as (

    select distinct language as name
    from {{ ref('stg_myanimelist__anime_voice_actors') }}
    where language is not null

),

final as (

    select
        {{ surrogate_id('language_id', 'name', 'spoken') }} as language_id,
        spoken.name

    from spoken
    order by spoken.name

)

select * from final
