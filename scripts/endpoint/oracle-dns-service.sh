#!/usr/bin/env bash
# Worked example of a `command` endpoint (plan: cutover.endpoint.kind: command) for the Oracle reference
# case: the application reaches the database through one DNS name (HOSP_DNS_NAME, a CNAME) and one
# database service (HOSP_SERVICE) that exists on both databases.
#
#   current           prints `source` or `target`: where the CNAME points
#   is-paused         prints `true` or `false`: whether the service is stopped on the side the CNAME names
#   pause             stops the service there (new connections refused; the freeze ends existing sessions)
#   resume            starts the service on the side the CNAME names
#   point-to SIDE     moves the CNAME to SIDE's host (the service stays as it is: resume opens it)
#
# Every verb is idempotent and exits non-zero, saying why on stderr, when it cannot do its job: bascule
# fails the step rather than guess. Site settings come from the environment (the plan's command runs
# with the worker's environment): HOSP_DNS_NAME, HOSP_DNS_SERVER, HOSP_DNS_KEY (a TSIG key file for
# nsupdate), HOSP_SOURCE_HOST, HOSP_TARGET_HOST, HOSP_SERVICE, and HOSP_SOURCE_SQL / HOSP_TARGET_SQL (the
# connect strings, through a wallet, of a user with EXECUTE on DBMS_SERVICE: never a password here).
set -euo pipefail

die() { echo "oracle-dns-service: $*" >&2; exit 2; }
need() { [ -n "${!1:-}" ] || die "$1 is not set"; }
for v in HOSP_DNS_NAME HOSP_DNS_SERVER HOSP_SOURCE_HOST HOSP_TARGET_HOST HOSP_SERVICE HOSP_SOURCE_SQL \
         HOSP_TARGET_SQL; do need "$v"; done
TTL=${HOSP_DNS_TTL:-30}

current() {
  local host
  host=$(dig +short "@$HOSP_DNS_SERVER" "$HOSP_DNS_NAME" CNAME | sed 's/\.$//')
  case "$host" in
    "$HOSP_SOURCE_HOST") echo source ;;
    "$HOSP_TARGET_HOST") echo target ;;
    *) die "$HOSP_DNS_NAME points at '${host:-nothing}', neither source nor target" ;;
  esac
}

sql_for() { if [ "$1" = source ]; then echo "$HOSP_SOURCE_SQL"; else echo "$HOSP_TARGET_SQL"; fi; }

# One SQL*Plus call; WHENEVER SQLERROR makes any ORA- error a non-zero exit (nothing is swallowed).
run_sql() {
  sqlplus -s -L "$(sql_for "$1")" <<SQL
WHENEVER SQLERROR EXIT FAILURE
SET HEADING OFF FEEDBACK OFF PAGESIZE 0
$2
EXIT
SQL
}

is_paused() {
  local side running
  side=$(current)
  # v\$active_services lists a service while it is started on an instance (gv\$ on RAC).
  running=$(run_sql "$side" "SELECT COUNT(*) FROM gv\$active_services WHERE name = '$HOSP_SERVICE';" | tr -d '[:space:]')
  case "$running" in
    0) echo true ;;
    [1-9]*) echo false ;;
    *) die "could not read the state of service $HOSP_SERVICE on the $side: '$running'" ;;
  esac
}

case "${1:-}" in
  current) current ;;
  is-paused) is_paused ;;
  pause)
    [ "$(is_paused)" = true ] && exit 0
    run_sql "$(current)" "EXEC DBMS_SERVICE.STOP_SERVICE(service_name => '$HOSP_SERVICE', instance_name => NULL)" ;;
  resume)
    [ "$(is_paused)" = false ] && exit 0
    run_sql "$(current)" "EXEC DBMS_SERVICE.START_SERVICE(service_name => '$HOSP_SERVICE', instance_name => NULL)" ;;
  point-to|point_to)
    side=${2:-}
    case "$side" in source) host=$HOSP_SOURCE_HOST ;; target) host=$HOSP_TARGET_HOST ;; *) die "point-to source|target" ;; esac
    [ "$(current)" = "$side" ] && exit 0
    nsupdate ${HOSP_DNS_KEY:+-k "$HOSP_DNS_KEY"} <<NSU
server $HOSP_DNS_SERVER
update delete $HOSP_DNS_NAME CNAME
update add $HOSP_DNS_NAME $TTL CNAME $host.
send
NSU
    [ "$(current)" = "$side" ] || die "$HOSP_DNS_NAME still does not point at the $side after the update" ;;
  *) die "usage: $0 current|is-paused|pause|resume|point-to source|target" ;;
esac
