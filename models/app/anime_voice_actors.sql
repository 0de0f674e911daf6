with roles as (

    select * from {{ ref('stg_myanimelist__anime_voice_actors') }}

),

languages as (

    select
        language_id,
        name
    from {{ ref('languages') }}

),

-- a role whose language is unknown keeps it unknown: a null language_id
spoken as (

    select
        roles.*,
        languages.language_id

    from roles
    left join languages on languages.name = roles.language

),

linked as (

    {{ resolve_ends('spoken', {
        'anime_mal_id': [ref('anime'), 'anime_id'],
        'character_mal_id': [ref('characters'), 'character_id'],
        'person_mal_id': [ref('voice_actors'), 'voice_actor_id'],
    }, columns=['language_id', 'character_role']) }}

),

final as (

    select
        {{ surrogate_id(
            'anime_voice_actor_id',
            ['anime_id', 'character_id', 'voice_actor_id', 'language_id', 'character_role'],
            'linked'
        ) }} as anime_voice_actor_id,
        linked.anime_id,
        linked.character_id,
        linked.voice_actor_id,
        linked.language_id,
        linked.character_role

    from linked
    order by linked.anime_id, linked.character_id, linked.voice_actor_id, linked.language_id

)

select * from final
