{{ assert_seed(ref('mal_anime_voice_actors')) }}

with source as (

    select * from {{ ref('mal_anime_voice_actors') }}

),

renamed as (

    select
        anime_id::bigint as anime_mal_id,
        character_id::bigint as character_mal_id,
        person_id::bigint as person_mal_id,
        character_role,
        nullif(trim(language), '') as language

    from source

),

-- A person page lists roles without their language: such a row stays, its language unknown
-- (null), unless a page of the anime gives the same role with its language.
deduplicated as (

    select renamed.*
    from renamed
    where renamed.language is not null
        or not exists (
            select 1 from renamed as told
            where told.anime_mal_id = renamed.anime_mal_id
                and told.character_mal_id = renamed.character_mal_id
                and told.person_mal_id = renamed.person_mal_id
                and told.language is not null
        )

),

resolved as (

    {{ keep_resolved('deduplicated', {
        'anime_mal_id': ref('stg_myanimelist__anime'),
        'character_mal_id': ref('stg_myanimelist__characters'),
        'person_mal_id': ref('stg_myanimelist__people'),
    }) }}

)

select * from resolved
