{{ config(severity='warn', fail_calc='coalesce(sum(left_out_rows), 0)') }}
-- Rows of a bridge seed that name something the crawl did not record (an anime, genre, company,
-- person, character or manga without its own row), or a voice role whose language cannot be
-- told, are left out of the application tables by the staging models (keep_resolved, in
-- macros/bridge_ends.sql). This test counts them per file, so what a crawl could not use is
-- reported (as a warning) instead of vanishing.
{% set bridges = [
    ('mal_anime_genres', 'stg_myanimelist__anime_genres'),
    ('mal_anime_companies', 'stg_myanimelist__anime_companies'),
    ('mal_anime_voice_actors', 'stg_myanimelist__anime_voice_actors'),
    ('mal_anime_original_creators', 'stg_myanimelist__anime_original_creators'),
    ('mal_manga_authors', 'stg_myanimelist__manga_authors'),
    ('mal_anime_adaptations', 'stg_myanimelist__anime_adaptations'),
] %}

with counts as (

    {% for seed, staged in bridges %}
        select
            'seeds/{{ seed }}.csv' as seed_file,
            (select count(*) from {{ ref(seed) }}) as seed_rows,
            (select count(*) from {{ ref(staged) }}) as kept_rows
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    seed_file,
    seed_rows,
    kept_rows,
    seed_rows - kept_rows as left_out_rows
from counts
where seed_rows > kept_rows
