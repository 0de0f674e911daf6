-- Ratings belong to the application (the generators write them), never to dbt: this model only
-- gives the table its shape and constraints, and no run ever rebuilds it. The business rule
-- (rate only what you are watching or have completed) is a trigger, see macros/business_rules.sql.
-- depends_on: {{ ref('wishlist') }}
select
    null::bigint as rating_id,
    null::bigint as user_id,
    null::bigint as anime_id,
    null::smallint as score,
    null::timestamptz as created_date,
    null::timestamptz as modified_date
where false
