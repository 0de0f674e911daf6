with people as (

    select * from {{ ref('stg_myanimelist__people') }}

),

creators as (

    {{ named_in('people', ref('int_anime_original_creator_credits'), 'person_mal_id') }}

),

final as (

    select
        {{ surrogate_id('creator_id', 'mal_id', 'creators') }} as creator_id,
        creators.mal_id,
        creators.name,
        now() as created_date,
        now() as modified_date

    from creators
    order by creators.mal_id

)

select * from final
