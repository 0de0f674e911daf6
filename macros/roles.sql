{#- Least privilege for the two tools that run unattended. Both roles are NOLOGIN groups: a tool
    connects with whatever credentials it is given and then SETs ROLE to its own, so it can do no
    more than its role allows; the user that runs dbt becomes a member of both.
      animedb_generator: read the catalog, write users, wishlist and ratings (nothing in etl);
      animedb_exporter: read everything, write only etl.watermarks, etl.export_runs and
                        etl.export_chunks, and
                        see other sessions' transactions (pg_monitor) for the watermark bound.
    Runs at the end of every dbt invocation; until the application tables exist it waits. -#}
{% macro grant_roles() -%}
  {%- if not execute or adapter.get_relation(database=target.database, schema='app', identifier='ratings') is none -%}
  select 'roles are granted once the application tables exist'
  {%- else -%}
  do $roles$
  begin
      if not exists (select from pg_roles where rolname = 'animedb_generator') then
          create role animedb_generator nologin;
      end if;
      if not exists (select from pg_roles where rolname = 'animedb_exporter') then
          create role animedb_exporter nologin;
      end if;
      begin
          grant pg_monitor to animedb_exporter;
      exception when insufficient_privilege then
          raise warning 'could not grant pg_monitor to animedb_exporter (%): an administrator must run GRANT pg_monitor TO animedb_exporter, or the exporter will refuse to run', sqlerrm;
      end;
  end
  $roles$;

  grant animedb_generator, animedb_exporter to current_user;

  grant usage on schema app to animedb_generator, animedb_exporter;
  grant select on all tables in schema app to animedb_generator, animedb_exporter;
  grant select on all sequences in schema app to animedb_exporter;
  grant insert, update, delete on app.users, app.wishlist, app.ratings to animedb_generator;
  grant usage on sequence app.users_id_seq, app.wishlist_id_seq, app.ratings_id_seq to animedb_generator;

  grant usage on schema etl to animedb_exporter;
  grant select on all tables in schema etl to animedb_exporter;
  grant select on all sequences in schema etl to animedb_exporter;
  grant insert, update on etl.watermarks, etl.export_runs, etl.export_chunks to animedb_exporter;
  grant execute on function etl.source_identity() to animedb_exporter;
  {%- endif -%}
{%- endmacro %}
