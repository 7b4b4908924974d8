#!/bin/sh
# Entrypoint of the real-server stand-in images (postgres, redis, nginx): Debian's own servers.
# First `standin --check` validates and logs the environment like every stand-in (exits non-zero loudly when a
# required variable is missing); then the real server starts in the foreground, the way the upstream image's
# entrypoint would start it. nginx proxies / to uwsgi (DJANGO_HOSTNAME:WSGI_PORT) and serves /static/ from the
# django_static volume, so its 302 on / proves the app behind it answers.
set -eu
# On stderr: a client run (`podman run IMAGE pg_dump ...`) writes its data to stdout, as with the real image.
/usr/local/bin/standin --check "$@" >&2
tag="e2e-standin[${E2E_STANDIN_COMPONENT}]"

case "${E2E_STANDIN_COMPONENT}" in
postgres)
  # Like the official postgres image: POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB on first start, then postgres.
  # POSTGRES_HOST_AUTH_METHOD=trust (omlboot's throwaway verification server) needs no password, as there.
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  export PATH="$PGBIN:$PATH"
  export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
  POSTGRES_USER="${POSTGRES_USER:-postgres}"
  POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
  if [ "$1" != postgres ]; then exec "$@"; fi
  shift
  as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
      echo "$tag: FATAL: Database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
      exit 1
    fi
    echo "$tag: initdb in $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB, host auth $auth"
    pw=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pw"
    chown postgres "$pw"
    pwopt=--pwfile="$pw"
    [ -n "${POSTGRES_PASSWORD:-}" ] || pwopt=--no-instructions
    as_pg initdb -D "$PGDATA" --username="$POSTGRES_USER" "$pwopt" \
      --auth-local=trust --auth-host="$auth" >/dev/null
    rm -f "$pw"
    echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
      as_pg pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start >/dev/null
      as_pg psql -v ON_ERROR_STOP=1 -h /var/run/postgresql --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
      as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    echo "$tag: init done"
  fi
  echo "$tag: exec postgres $*"
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres "$@"
  ;;
redis)
  mkdir -p /data
  if [ $# -eq 0 ]; then set -- redis-server; fi
  case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
  if [ "$1" != redis-server ]; then exec "$@"; fi
  shift
  case "${1:-}" in
  *.conf) echo "$tag: exec redis-server $*"; exec redis-server "$@" ;;
  esac
  echo "$tag: exec redis-server --bind ${BIND_IP:-0.0.0.0} --protected-mode no --dir /data $*"
  exec redis-server --bind "${BIND_IP:-0.0.0.0}" --protected-mode no --dir /data "$@"
  ;;
nginx)
  if [ $# -gt 0 ]; then exec "$@"; fi
  cert=/etc/omnileads/certs/cert.pem key=/etc/omnileads/certs/key.pem
  if [ ! -s "$cert" ] || [ ! -s "$key" ]; then
    echo "$tag: no $cert/$key, using the image's self-signed certificate"
    cert=/etc/ssl/certs/ssl-cert-snakeoil.pem key=/etc/ssl/private/ssl-cert-snakeoil.key
  fi
  cat > /etc/nginx/e2e.conf <<NGINX
user www-data;
worker_processes 1;
daemon off;
pid /run/nginx-e2e.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log /dev/stdout;
  server {
    listen 443 ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    default_type text/plain;
    # What the stand-in was configured with (the old catch-all answer, now on its own path).
    location = /e2e-standin {
      return 200 "e2e-standin component=nginx mode=nginx wsgi=${DJANGO_HOSTNAME}:${WSGI_PORT} asgi=${DAPHNE_HOSTNAME}:${ASGI_PORT} websockets=${WEBSOCKETS_HOSTNAME}:${WEBSOCKETS_PORT} kamailio=${KAMAILIO_HOSTNAME}:${KAMAILIO_PORT}\n";
    }
    # Django's collected static files: the django_static volume, filled by django_commands.sh.
    location /static/ {
      alias /opt/omnileads/static/;
    }
    # The Django app behind uwsgi, like the real image: 302 to the login page when uwsgi answers, 502 otherwise.
    location / {
      include /etc/nginx/uwsgi_params;
      uwsgi_connect_timeout 5s;
      uwsgi_pass ${DJANGO_HOSTNAME}:${WSGI_PORT};
    }
  }
}
NGINX
  echo "$tag: exec nginx (443/tcp, cert $cert; / -> uwsgi ${DJANGO_HOSTNAME}:${WSGI_PORT}; /static/ -> /opt/omnileads/static)"
  exec nginx -c /etc/nginx/e2e.conf
  ;;
*)
  echo "$tag: FATAL: server-entrypoint.sh has no server for this component" >&2
  exit 70
  ;;
esac
