with credits as (

    select * from {{ ref('int_anime_original_creator_credits') }}

),

anime as (

    select
        anime_id,
        mal_id
    from {{ ref('anime') }}

),

creators as (

    select
        creator_id,
        mal_id
    from {{ ref('original_creators') }}

),

linked as (

    select
        anime.anime_id,
        creators.creator_id,
        credits.role

    from credits
    join anime on anime.mal_id = credits.anime_mal_id
    join creators on creators.mal_id = credits.person_mal_id

),

final as (

    select
        {{ surrogate_id(
            'anime_original_creator_id', ['anime_id', 'creator_id', 'role'], 'linked'
        ) }} as anime_original_creator_id,
        linked.anime_id,
        linked.creator_id,
        linked.role

    from linked
    order by linked.anime_id, linked.creator_id, linked.role

)

select * from final
