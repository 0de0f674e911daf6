with people as (

    select * from {{ ref('stg_myanimelist__people') }}

),

roles as (

    select distinct person_mal_id from {{ ref('stg_myanimelist__anime_voice_actors') }}

),

voice_actors as (

    select people.*
    from people
    join roles on roles.person_mal_id = people.mal_id

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
