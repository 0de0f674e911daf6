{#- Least privilege for the two tools that run unattended. Each logs in as its own role (never
    as a stronger user that SETs ROLE, which RESET ROLE would undo), and a tool role holds
    exactly these grants: no attribute and no membership through which it could escalate.
      animedb_generator: read the catalog, write users, wishlist and ratings (nothing in etl);
      animedb_exporter: read everything, write only etl.watermarks, etl.export_runs,
                        etl.export_chunks, etl.lake_files and etl.lake_maintenance, and call
                        the two definer functions that give it the oldest open transaction
                        (the watermark bound) and the source's identity.
    On Amazon RDS the roles are also members of rds_iam, so they log in with IAM tokens only.
    Passwords are the administrator's business (infra/README.md, README.md "Tool logins").
    Runs at the end of every dbt invocation; until the application tables exist it waits. -#}
{% macro grant_roles() -%}
    {%- if not execute or adapter.get_relation(
        database=target.database, schema='app', identifier='ratings'
    ) is none -%}
    select 'roles are granted once the application tables exist'
    {%- else -%}
    do $roles$
    declare
        tool text;
        member_of text;
    begin
        foreach tool in array array['animedb_generator', 'animedb_exporter'] loop
            if not exists (select from pg_roles where rolname = tool) then
                execute format('create role %I login', tool);
            end if;
            if exists (select from pg_roles where rolname = tool and not rolcanlogin) then
                execute format('alter role %I login', tool);
            end if;
            if exists (
                select from pg_roles where rolname = tool
                  and (rolsuper or rolcreaterole or rolcreatedb or rolreplication or rolbypassrls)
            ) then
                execute format(
                    'alter role %I nosuperuser nocreaterole nocreatedb noreplication nobypassrls',
                    tool
                );
            end if;
            for member_of in
                select r.rolname from pg_auth_members as m
                join pg_roles as r on r.oid = m.roleid
                where m.member = (select oid from pg_roles where rolname = tool)
                    and r.rolname <> 'rds_iam'
            loop
                begin
                    execute format('revoke %I from %I', member_of, tool);
                exception when insufficient_privilege then
                    raise exception 'the tool role % is a member of %, through which it could do more than its grants, and % may not revoke it: an administrator must run REVOKE % FROM %', tool, member_of, current_user, member_of, tool;
                end;
            end loop;
            if exists (select from pg_roles where rolname = 'rds_iam') then
                execute format('grant rds_iam to %I', tool);
            end if;
        end loop;
    end
    $roles$;

    {#- Nothing reaches the tools through PUBLIC: no objects of their own, not even temporary
        ones (a trigger on a temp table was a way to call a definer function). -#}
    revoke create on schema public from public;
    do $temp$
    begin
        execute format('revoke temporary on database %I from public', current_database());
        execute format('grant temporary on database %I to %I', current_database(), current_user);
    exception when insufficient_privilege then
        raise warning 'could not take the right to create temporary tables from PUBLIC on % (%): an administrator may run REVOKE TEMPORARY ON DATABASE % FROM PUBLIC', current_database(), sqlerrm, current_database();
    end
    $temp$;

    grant usage on schema app to animedb_generator, animedb_exporter;
    grant select on all tables in schema app to animedb_generator, animedb_exporter;
    grant select on all sequences in schema app to animedb_exporter;
    grant insert, update, delete on app.users, app.wishlist, app.ratings to animedb_generator;
    grant usage on sequence app.users_id_seq, app.wishlist_id_seq, app.ratings_id_seq
        to animedb_generator;

    grant usage on schema etl to animedb_exporter;
    grant select on all tables in schema etl to animedb_exporter;
    grant select on all sequences in schema etl to animedb_exporter;
    grant insert, update on etl.watermarks, etl.export_runs, etl.export_chunks to animedb_exporter;
    grant insert, update, delete on etl.lake_files, etl.lake_maintenance to animedb_exporter;
    grant execute on function etl.source_identity(), etl.oldest_open_transaction()
        to animedb_exporter;
    {%- endif -%}
{%- endmacro %}
