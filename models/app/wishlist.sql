-- Wishlist entries belong to the application (the generators write them), never to dbt: this
-- model only gives the table its shape and constraints, and no run ever rebuilds it.
select
    null::bigint as wishlist_id,
    null::bigint as user_id,
    null::bigint as anime_id,
    null::text as status,
    null::integer as episodes_watched,
    null::timestamptz as created_date,
    null::timestamptz as modified_date
where false
