-- Users belong to the application (the generators write them), never to dbt: this model only
-- gives the table its shape and constraints. It is incremental with full_refresh disabled, so no
-- run, `--full-refresh` included, ever truncates or rebuilds it.
select
    null::bigint as user_id,
    null::text as username,
    null::text as email,
    null::text as display_name,
    null::text as country_code,
    null::integer as birth_year,
    null::bigint as favorite_genre_id,
    null::text as bio,
    null::timestamptz as created_date,
    null::timestamptz as modified_date
where false
