-- Who created the original work of each anime, from two kinds of page: an anime's staff list
-- ("Original Creator") and the authors of the manga the anime adapts ("Story & Art", ...).
with staff_credits as (

    select
        anime_mal_id,
        person_mal_id,
        role
    from {{ ref('stg_myanimelist__anime_original_creators') }}

),

adaptations as (

    select * from {{ ref('stg_myanimelist__anime_adaptations') }}

),

manga_authors as (

    select * from {{ ref('stg_myanimelist__manga_authors') }}

),

author_credits as (

    select
        adaptations.anime_mal_id,
        manga_authors.person_mal_id,
        manga_authors.role

    from adaptations
    join manga_authors on manga_authors.manga_mal_id = adaptations.manga_mal_id

),

final as (

    select * from staff_credits
    union
    select * from author_credits

)

select * from final
