{#- The business rule, enforced by the database for every client:
      a user may rate an anime only while that anime is on the user's wishlist with status
      watching or completed.
    Ratings check it when written; the wishlist refuses to leave those statuses while a rating
    exists (delete the rating first), so the rule holds at every moment, not only at rating time.
    The wishlist also keeps episodes_watched within the anime's episode count when it is known.
    Statement-level triggers over transition tables: one query per statement, not per row, so
    bulk writes stay cheap. The rating side locks the wishlist rows it relies on (FOR SHARE), so a
    concurrent status change waits for it and then sees the rating: no write skew between them. -#}
{#- on-run-start: the rule's trigger functions (they name the tables only when they run) -#}
{% macro rating_rule_functions() -%}
    create schema if not exists app;

    create or replace function app.check_ratings_allowed() returns trigger
    language plpgsql as $fn$
    declare
        bad record;
    begin
        perform 1
        from app.wishlist as w
        join new_rows as r on r.user_id = w.user_id and r.anime_id = w.anime_id
        for share of w;

        select r.user_id, r.anime_id, w.status into bad
        from new_rows as r
        left join app.wishlist as w on w.user_id = r.user_id and w.anime_id = r.anime_id
        where w.status is null or w.status not in ('watching', 'completed')
        limit 1;

        if found then
            raise exception 'rating refused: user % may rate anime % only while it is on their wishlist with status watching or completed (it is %)',
                bad.user_id, bad.anime_id,
                coalesce('on the wishlist as ' || bad.status, 'not on the wishlist')
                using errcode = 'check_violation',
                    constraint = 'ratings_need_watching_or_completed';
        end if;
        return null;
    end
    $fn$;

    create or replace function app.check_wishlist_changes() returns trigger
    language plpgsql as $fn$
    declare
        bad record;
    begin
        select n.user_id, n.anime_id, n.episodes_watched, a.episodes into bad
        from new_rows as n
        join app.anime as a on a.anime_id = n.anime_id
        where n.episodes_watched > a.episodes
        limit 1;
        if found then
            raise exception 'wishlist change refused: user % has watched % episodes of anime %, which has only %',
                bad.user_id, bad.episodes_watched, bad.anime_id, bad.episodes
                using errcode = 'check_violation', constraint = 'wishlist_episodes_within_anime';
        end if;

        if tg_op = 'UPDATE' then
            select n.user_id, n.anime_id, n.status into bad
            from new_rows as n
            join app.ratings as r on r.user_id = n.user_id and r.anime_id = n.anime_id
            where n.status not in ('watching', 'completed')
            limit 1;
            if found then
                raise exception 'wishlist change refused: user % has rated anime %, so it must stay watching or completed (not %); delete the rating first',
                    bad.user_id, bad.anime_id, bad.status
                    using errcode = 'check_violation',
                        constraint = 'ratings_need_watching_or_completed';
            end if;
        end if;
        return null;
    end
    $fn$;
{%- endmacro %}

{#- post-hook of the ratings model, the last of the two tables to exist: each rule after insert
    and after update, one trigger for each, as a trigger with a transition table has one event -#}
{% macro rating_rule_triggers() -%}
    {%- for trigger, table, function in [
        ('ratings_allowed', 'ratings', 'check_ratings_allowed'),
        ('wishlist_rules', 'wishlist', 'check_wishlist_changes'),
    ] -%}
        {%- for event in ['insert', 'update'] %}
    create or replace trigger {{ trigger }}_on_{{ event }}
        after {{ event }} on app.{{ table }}
        referencing new table as new_rows
        for each statement execute function app.{{ function }}();
        {% endfor -%}
    {%- endfor -%}
{%- endmacro %}
