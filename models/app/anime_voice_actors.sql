with roles as (

    select * from {{ ref('stg_myanimelist__anime_voice_actors') }}

),

anime as (

    select
        anime_id,
        mal_id
    from {{ ref('anime') }}

),

characters as (

    select
        character_id,
        mal_id
    from {{ ref('characters') }}

),

voice_actors as (

    select
        voice_actor_id,
        mal_id
    from {{ ref('voice_actors') }}

),

languages as (

    select
        language_id,
        name
    from {{ ref('languages') }}

),

linked as (

    select
        anime.anime_id,
        characters.character_id,
        voice_actors.voice_actor_id,
        languages.language_id,
        roles.character_role

    from roles
    join anime on anime.mal_id = roles.anime_mal_id
    join characters on characters.mal_id = roles.character_mal_id
    join voice_actors on voice_actors.mal_id = roles.person_mal_id
    left join languages on languages.name = roles.language

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
