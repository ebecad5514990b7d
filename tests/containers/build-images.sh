#!/usr/bin/env bash
# Build the docker runtime's local test images from the host's binaries (no
# registry is reachable here) into the Podman storage of podman-up.sh DIR:
#
#   localhost/dblease-postgres:15   look-alike of the official postgres image
#   localhost/dblease-redis:7       look-alike of the official redis image
#
#   tests/containers/build-images.sh DIR
#
# Each image is a rootfs of the host's server binaries, the shared libraries
# ldd names for them, the dynamic loader, dash as /bin/sh, a few coreutils,
# passwd/group entries and a POSIX-sh entrypoint with the official image's
# interface (see the entrypoints below). The rootfs is tarred and imported
# with `podman import`. An image that exists with this script's build label
# is kept; a stale one (the script changed) is rebuilt. Needs no running
# service: podman uses DIR's storage directly. Exits 77 when podman or the
# host's PostgreSQL 15 / redis-server are missing.
set -euo pipefail

skip() { echo "build-images: $*" >&2; exit 77; }

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
if [ ! -f "$1/containers.conf" ]; then
    echo "build-images: run podman-up.sh $1 first" >&2
    exit 2
fi
dir=$(cd "$1" && pwd -P)
export CONTAINERS_CONF="$dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
command -v podman >/dev/null || skip "podman is not installed"

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_LIB=/usr/lib/postgresql/$PG_MAJOR/lib
PG_SHARE=/usr/share/postgresql/$PG_MAJOR
PG_IMAGE=localhost/dblease-postgres:$PG_MAJOR
REDIS_IMAGE=localhost/dblease-redis:7
PG_UID=999
REDIS_UID=998

# The image carries a hash of this script: edit it and the images rebuild.
build_id=$(sha256sum "$0" | cut -c1-16)

image_current() {  # IMAGE -> 0 when present with this build_id
    local got
    got=$(podman image inspect --format '{{ index .Config.Labels "dblease-test-image.build" }}' "$1" 2>/dev/null) || return 1
    [ "$got" = "$build_id" ]
}

# --- rootfs helpers --------------------------------------------------------

root=""  # the rootfs being built

new_rootfs() {
    root=$(mktemp -d "$dir/rootfs.XXXXXX")
    chmod 755 "$root"  # mktemp made it 0700: it becomes the image's /
    # Debian's merged /usr: the same links as the host, so paths ldd prints
    # (/lib/x86_64-linux-gnu/...) and /bin/sh resolve inside the image.
    mkdir -p "$root"/usr/{bin,sbin,lib,lib64,local/bin} "$root"/{etc,tmp,var/tmp,run}
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    chmod 1777 "$root/tmp" "$root/var/tmp"
}

add_file() {  # PATH: copy (dereferenced) to the same path; parent dir resolved
    local src=$1 d
    d=$(readlink -f "$(dirname "$src")")
    mkdir -p "$root$d"
    cp -L --preserve=mode "$src" "$root$d/$(basename "$src")"
}

add_tree() {  # DIR: copy a directory tree, keeping its links (zoneinfo has
    local src=$1  # many); a link that would dangle in the image fails the build
    mkdir -p "$root$(dirname "$src")"
    cp -a "$src" "$root$src"
    local dangling
    dangling=$(cd "$root" && find ".$src" -xtype l | head -n 3)
    [ -z "$dangling" ] || { echo "build-images: dangling links in $src: $dangling" >&2; exit 1; }
}

add_libs() {  # ELF files...: every shared library ldd lists, and the loader
    local lib
    # One ldd for all files; it prints "FILE:" headers when given several.
    while read -r lib; do
        case $lib in
            "not found "*) echo "build-images: missing library: ${lib#not found }" >&2; exit 1 ;;
        esac
        [ -e "$root$(readlink -f "$(dirname "$lib")")/$(basename "$lib")" ] || add_file "$lib"
    done < <(ldd "$@" 2>/dev/null | awk '
        /not found/ { print "not found " $1; next }
        /=> \// { print $3; next }
        $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
}

add_bins() {  # ELF executables: the file and its libraries
    local f
    for f in "$@"; do add_file "$f"; done
    add_libs "$@"
}

add_base() {  # USER UID: sh, a few coreutils, passwd/group, nss, hosts
    local user=$1 uid=$2
    add_bins /bin/dash /bin/mkdir /bin/chmod /bin/rm /bin/cat /usr/bin/id /bin/ls /usr/bin/locale
    ln -s dash "$root/usr/bin/sh"
    cat > "$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
$user:x:$uid:$uid:$user:/home/$user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
    cat > "$root/etc/group" <<EOF
root:x:0:
$user:x:$uid:
nogroup:x:65534:
EOF
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
    : > "$root/etc/resolv.conf"
    mkdir -p "$root/root" "$root/home/$user"
    chown "$uid:$uid" "$root/home/$user"
    chmod 700 "$root/root"
    # A loader cache, so lookups do not depend on built-in search paths.
    printf '/usr/lib/x86_64-linux-gnu\n/usr/local/lib\n' > "$root/etc/ld.so.conf"
    ldconfig -r "$root" 2>/dev/null || true
}

import_rootfs() {  # IMAGE --change... : tar the rootfs, import, drop the rootfs
    local image=$1; shift
    local tarball="$root.tar"
    tar -C "$root" --numeric-owner -cf "$tarball" .
    podman import --quiet \
        --change "LABEL dblease-test-image.build=$build_id" "$@" \
        "$tarball" "$image" >/dev/null
    rm -rf "$root" "$tarball"
    root=""
}

cleanup() { [ -n "$root" ] && rm -rf "$root" "$root.tar"; return 0; }
trap cleanup EXIT

# --- postgres ----------------------------------------------------------------

build_postgres() {
    if [ ! -x "$PG_BIN/postgres" ] || [ ! -x "$PG_BIN/initdb" ]; then
        skip "PostgreSQL $PG_MAJOR is not installed in $PG_BIN"
    fi
    new_rootfs
    add_base postgres "$PG_UID"

    # Server and client binaries, their libraries and those of the extension
    # modules (contrib). Not the LLVM JIT: libLLVM is ~100 MB; without
    # llvmjit.so the server just runs without JIT.
    local bins=() mods=() f
    mkdir -p "$root$PG_BIN"
    for f in "$PG_BIN"/*; do
        case $(readlink "$f" || true) in
            "") bins+=("$f") ;;
            */*) bins+=("$f") ;;                         # points elsewhere: copy
            *) cp -P "$f" "$root$PG_BIN/" ;;              # postmaster -> postgres
        esac
    done
    add_bins "${bins[@]}"
    mkdir -p "$root$PG_LIB"
    for f in "$PG_LIB"/*; do
        case $(basename "$f") in bitcode|llvmjit*) continue ;; esac
        cp -rL --preserve=mode "$f" "$root$PG_LIB/"
        case $f in *.so) mods+=("$f") ;; esac
    done
    add_libs "${mods[@]}"
    # Share dir (postgres.bki, conf samples, timezonesets, tsearch) minus man
    # pages; Debian builds with the system tzdata, so /usr/share/zoneinfo too.
    add_tree "$PG_SHARE"
    rm -rf "$root$PG_SHARE/man"
    add_tree /usr/share/zoneinfo
    [ -d /usr/lib/locale/C.utf8 ] && add_tree /usr/lib/locale/C.utf8
    # Like the official image: new clusters listen on every address.
    sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$root$PG_SHARE/postgresql.conf.sample"
    grep -q "^listen_addresses = '\*'" "$root$PG_SHARE/postgresql.conf.sample"

    mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
    chown -R "$PG_UID:$PG_UID" "$root/var/lib/postgresql" "$root/var/run/postgresql"
    chmod 700 "$root/var/lib/postgresql/data"
    chmod 2777 "$root/var/run/postgresql"

    cat > "$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Look-alike of the official postgres image's entrypoint (dblease tests).
# Env: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_USER (default postgres), POSTGRES_DB (default $POSTGRES_USER),
# PGDATA (default /var/lib/postgresql/data), POSTGRES_INITDB_ARGS,
# POSTGRES_HOST_AUTH_METHOD (default scram-sha-256). Arguments go to postgres;
# a first argument starting with '-' gets `postgres` put before it.
# The image runs as user postgres (uid 999): no gosu step.
set -eu

if [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

want_help=
for a in "$@"; do
    case $a in -'?'|--help|--describe-config|-V|--version) want_help=1 ;; esac
done

if [ "$1" = postgres ] && [ -z "$want_help" ]; then
    : "${PGDATA:=/var/lib/postgresql/data}"
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    export PGDATA
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA" 2>/dev/null || true

    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
            echo "Error: Database is uninitialized and superuser password is not specified." >&2
            echo "       You must specify POSTGRES_PASSWORD to a non-empty value for the" >&2
            echo "       superuser. For example, \"-e POSTGRES_PASSWORD=password\" on \"docker run\"." >&2
            exit 1
        fi
        pwopt=
        if [ -n "${POSTGRES_PASSWORD:-}" ]; then
            pwfile=/tmp/pgpass.$$
            (umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile")
            pwopt="--pwfile=$pwfile"
        fi
        # Local (Unix socket) connections trust, TCP ones need the password.
        # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is word-split on purpose
        initdb --username="$POSTGRES_USER" $pwopt \
            --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
            ${POSTGRES_INITDB_ARGS:-} >/dev/null
        [ -z "$pwopt" ] || rm -f "$pwfile"
        printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

        if [ "$POSTGRES_DB" != postgres ]; then
            # Quote the name (double any "), then create it in single-user
            # mode: no temporary server, no psql needed.
            q= s=$POSTGRES_DB
            while :; do
                case $s in
                    *\"*) q="$q${s%%\"*}\"\""; s=${s#*\"} ;;
                    *) q="$q$s"; break ;;
                esac
            done
            printf 'CREATE DATABASE "%s";\n' "$q" |
                postgres --single -j -D "$PGDATA" postgres >/dev/null
        fi
        echo "PostgreSQL init process complete; ready for start up." >&2
    fi
fi

exec "$@"
EOF
    chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"

    import_rootfs "$PG_IMAGE" \
        --change "ENV PATH=$PG_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV PG_MAJOR=$PG_MAJOR" \
        --change "ENV PGDATA=/var/lib/postgresql/data" \
        --change "ENV LANG=C.UTF-8" \
        --change "ENV TZ=UTC" \
        --change "USER postgres" \
        --change "WORKDIR /var/lib/postgresql" \
        --change "VOLUME /var/lib/postgresql/data" \
        --change "EXPOSE 5432" \
        --change "STOPSIGNAL SIGINT" \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD ["postgres"]'
}

# --- redis -------------------------------------------------------------------

build_redis() {
    local server cli
    server=$(command -v redis-server) || skip "redis-server is not installed"
    cli=$(command -v redis-cli || true)
    new_rootfs
    add_base redis "$REDIS_UID"
    # /usr/bin/redis-server is a link to redis-check-rdb: copy it dereferenced
    # under the name redis-server (the binary picks its mode from argv[0]).
    cp -L --preserve=mode "$server" "$root/usr/bin/redis-server"
    add_libs "$server"
    [ -z "$cli" ] || add_bins "$cli"

    mkdir -p "$root/data"
    chown "$REDIS_UID:$REDIS_UID" "$root/data"

    cat > "$root/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Look-alike of the official redis image's entrypoint (dblease tests).
# A first argument starting with '-' or ending in .conf gets `redis-server`
# put before it. The official image builds redis with protected mode off;
# the host's binary defaults to on, so --protected-mode no is added unless
# the arguments set it. The image runs as user redis (uid 998): no gosu step.
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
    pm=
    for a in "$@"; do
        [ "$a" = --protected-mode ] && pm=1
    done
    [ -n "$pm" ] || set -- "$@" --protected-mode no
    um="$(umask)"
    if [ "$um" = 0022 ]; then
        umask 0077
    fi
fi

exec "$@"
EOF
    chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"

    import_rootfs "$REDIS_IMAGE" \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "USER redis" \
        --change "WORKDIR /data" \
        --change "VOLUME /data" \
        --change "EXPOSE 6379" \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'CMD ["redis-server"]'
}

for image in "$PG_IMAGE" "$REDIS_IMAGE"; do
    if image_current "$image"; then
        echo "build-images: $image is up to date" >&2
        continue
    fi
    start=$(date +%s.%N)
    case $image in
        "$PG_IMAGE") build_postgres ;;
        "$REDIS_IMAGE") build_redis ;;
    esac
    awk -v i="$image" -v a="$start" -v b="$(date +%s.%N)" \
        'BEGIN { printf "build-images: built %s in %.1f s\n", i, b - a }' >&2
done
podman images --filter reference='localhost/dblease-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' >&2
