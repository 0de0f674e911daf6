{{ assert_seed(ref('mal_manga_authors')) }}

with source as (

    select * from {{ ref('mal_manga_authors') }}

),

renamed as (

    select
        manga_id::bigint as manga_mal_id,
        person_id::bigint as person_mal_id,
        trim(role) as role

    from source

),

resolved as (

    {{ keep_resolved('renamed', {
        'manga_mal_id': ref('stg_myanimelist__manga'),
        'person_mal_id': ref('stg_myanimelist__people'),
    }) }}

)

select * from resolved
