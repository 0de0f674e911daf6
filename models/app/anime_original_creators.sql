with credits as (

    select * from {{ ref('int_anime_original_creator_credits') }}

),

linked as (

    {{ resolve_ends('credits', {
        'anime_mal_id': [ref('anime'), 'anime_id'],
        'person_mal_id': [ref('original_creators'), 'creator_id'],
    }, columns=['role']) }}

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
