with people as (

    select * from {{ ref('stg_myanimelist__people') }}

),

credits as (

    select distinct person_mal_id from {{ ref('int_anime_original_creator_credits') }}

),

creators as (

    select people.*
    from people
    join credits on credits.person_mal_id = people.mal_id

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
