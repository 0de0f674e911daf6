with people as (

    select * from {{ ref('stg_myanimelist__people') }}

),

voice_actors as (

    {{ named_in('people', ref('stg_myanimelist__anime_voice_actors'), 'person_mal_id') }}

),

final as (

    select
        {{ surrogate_id('voice_actor_id', 'mal_id', 'voice_actors') }} as voice_actor_id,
        voice_actors.mal_id,
        voice_actors.name

    from voice_actors
    order by voice_actors.mal_id

)

select * from final
