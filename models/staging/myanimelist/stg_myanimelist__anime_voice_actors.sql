{{ assert_seed(ref('mal_anime_voice_actors'), key=['anime_id', 'character_id', 'person_id', 'language'],
               required=['anime_id', 'character_id', 'person_id', 'character_role'],
               accepted={'character_role': ['Main', 'Supporting']}) }}

with source as (

    select * from {{ ref('mal_anime_voice_actors') }}

),

anime as (

    select mal_id from {{ ref('stg_myanimelist__anime') }}

),

characters as (

    select mal_id from {{ ref('stg_myanimelist__characters') }}

),

people as (

    select mal_id from {{ ref('stg_myanimelist__people') }}

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

-- A person page lists roles without their language. A voice actor heard in exactly one
-- language everywhere else is taken to speak it there too; otherwise the row cannot be placed
-- and is dropped (counted by the unresolved_seed_references test).
single_language_people as (

    select person_mal_id, min(language) as language
    from renamed
    where language is not null
    group by person_mal_id
    having count(distinct language) = 1

),

languages_filled as (

    select
        renamed.anime_mal_id,
        renamed.character_mal_id,
        renamed.person_mal_id,
        renamed.character_role,
        coalesce(renamed.language, single_language_people.language) as language,
        renamed.language is null as language_inferred

    from renamed
    left join single_language_people
        on single_language_people.person_mal_id = renamed.person_mal_id

),

-- a row whose language was inferred adds nothing when the page of the anime said it already
deduplicated as (

    select distinct on (anime_mal_id, character_mal_id, person_mal_id, language)
        anime_mal_id,
        character_mal_id,
        person_mal_id,
        character_role,
        language

    from languages_filled
    where language is not null
    order by anime_mal_id, character_mal_id, person_mal_id, language, language_inferred

),

resolved as (

    select deduplicated.*
    from deduplicated
    where exists (select 1 from anime where anime.mal_id = deduplicated.anime_mal_id)
      and exists (select 1 from characters where characters.mal_id = deduplicated.character_mal_id)
      and exists (select 1 from people where people.mal_id = deduplicated.person_mal_id)

)

select * from resolved
