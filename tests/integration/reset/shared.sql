-- The shared-catalog rows a lease can see and change about itself.
SELECT 'db', datistemplate, datallowconn, datconnlimit, datacl, shobj_description(oid, 'pg_database')
FROM pg_database WHERE datname = current_database();
SELECT 'setting', setdatabase <> 0, setrole <> 0, setconfig FROM pg_db_role_setting
WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
   OR setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY 2, 3;
SELECT 'role', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
       rolconnlimit, rolvaliduntil, rolbypassrls, rolconfig, shobj_description(oid, 'pg_authid')
FROM pg_roles WHERE rolname = current_user;
SELECT 'members', count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid IN (m.member, m.roleid)
WHERE r.rolname = current_user;
-- Roles the lease is a member of (a template's owner role, when the lease
-- gets its rights by a grant): their settings and comments reach every lease.
SELECT 'granted', r.rolcanlogin, r.rolconfig, shobj_description(r.oid, 'pg_authid')
FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user) ORDER BY r.rolname;
