# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Several CA servers on one PostgreSQL, sourced by scripts/bench.sh (its
# helpers: start_ca, start_agent, wait_ready_agent, r, note, stop, log, and
# W, BB, TD, CA_BIN, PROP_TRIALS, RUNS). Two figures:
#
#   sec=ha_prop      an entry created through server A's admin socket, timed
#                    until the watch stream of a workload whose agent talks
#                    to server B carries it (bench/propagate, as section 4
#                    but across servers);
#   sec=ha_failover  an agent given both servers; the one it drew is killed
#                    with SIGKILL and an entry is created through the other:
#                    the time until the workload is served that entry (the
#                    agent noticed, moved, and synced with the other server).
#
# Needs Debian's postgresql (a private server in the work dir, run as the
# postgres user when we are root); without it the section is noted as not
# measured.

ha_pg_start() { # ha_pg_start DIR: sets HA_PG_URI, HA_PG_CTL
    local dir=$1 bin as=()
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || return 1
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || return 1
        as=(runuser -u postgres --)
        chown postgres "$dir"
    fi
    "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U mayfly -E UTF8 >"$dir/initdb.log" 2>&1 ||
        return 1
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 30 \
        -o "-k $dir -c listen_addresses=''" start >/dev/null || return 1
    "${as[@]}" "$bin/createdb" -h "$dir" -U mayfly mayfly || return 1
    HA_PG_URI="postgresql:///mayfly?host=$dir&user=mayfly"
    HA_PG_CTL=("${as[@]}" "$bin/pg_ctl" -D "$dir/data")
}

# ha_served SOCK ID SECONDS: until a fetch through SOCK lists ID
ha_served() {
    local end=$(($(date +%s%N) / 1000000 + $3 * 1000))
    while [ "$(($(date +%s%N) / 1000000))" -lt "$end" ]; do
        "$ROOT/$BINDIR/mayfly-agent" fetch x509 --socket "$1" 2>/dev/null | grep -q -- "$2" &&
            return 0
    done
    return 1
}

ha_bench() {
    local d=$W/ha
    mkdir -p "$d"
    # shellcheck disable=SC2174 # $W exists
    mkdir -m 755 -p "$W/run"
    if ! ha_pg_start "$d/pg"; then
        fail sec=ha "PostgreSQL could not be started (initdb/pg_ctl from Debian's postgresql)"
        return 0
    fi
    printf '%s\n' "$HA_PG_URI" >"$d/ds"
    chmod 600 "$d/ds"
    start_ca ha_a "$d/a" "" --datastore-file "$d/ds" --agent-rate 10000 --agent-burst 10000
    local pid_a=$CA_PID addr_a=$CA_ADDR sock_a=$CA_SOCK
    start_ca ha_b "$d/b" "" --datastore-file "$d/ds" --agent-rate 10000 --agent-burst 10000
    # shellcheck disable=SC2034 # read through ${!osock}
    local pid_b=$CA_PID addr_b=$CA_ADDR sock_b=$CA_SOCK
    # both keys in both bundles before any agent starts
    for _ in $(seq 1 100); do
        [ "$("$CA_BIN" bundle show --admin-socket "$sock_a" | grep -c 'BEGIN CERT')" = 2 ] && break
        sleep 0.05
    done
    "$CA_BIN" bundle show --admin-socket "$sock_a" >"$d/bundle.pem"

    # cross-server propagation: the agent talks to B, entries go through A
    local ag=spiffe://$TD/mayfly/agent/ha1 tok sock=$W/run/ha1.sock
    "$CA_BIN" entry create --admin-socket "$sock_a" --spiffe-id "spiffe://$TD/ha/base" \
        --parent-id "$ag" --selector unix:uid:0 >/dev/null
    tok=$("$CA_BIN" token generate --admin-socket "$sock_a" --spiffe-id "$ag")
    start_agent "$d/ag1" "$sock" "$d/bundle.pem" "$addr_b" --join-token "$tok"
    wait_ready_agent "$d/ag1/agent.log" 0 20 || { fail sec=ha_prop "the agent on server B never became ready"; return 0; }
    ha_served "$sock" "spiffe://$TD/ha/base" 10 || true
    log "ha: propagation across servers, entry on A, agent on B ($PROP_TRIALS trials)"
    r sec=ha_prop -- "$BB/propagate" --socket "$sock" --ca-bin "$CA_BIN" --admin-socket "$sock_a" \
        --parent "$ag" --selector unix:uid:0 --trials "$PROP_TRIALS" --prefix /ha/p >/dev/null
    stop "$AGENT_PID"

    # failover: RUNS times, an agent with both servers loses the one it drew
    log "ha: failover after SIGKILL of the agent's server ($RUNS runs)"
    local run drawn victim other osock t0 ms
    for run in $(seq 1 "$RUNS"); do
        ag=spiffe://$TD/mayfly/agent/fo$run
        sock=$W/run/fo$run.sock
        "$CA_BIN" entry create --admin-socket "$sock_a" --spiffe-id "spiffe://$TD/ha/fo$run" \
            --parent-id "$ag" --selector unix:uid:0 >/dev/null
        tok=$("$CA_BIN" token generate --admin-socket "$sock_a" --spiffe-id "$ag")
        start_agent "$d/fo$run" "$sock" "$d/bundle.pem" "$addr_a,$addr_b" --join-token "$tok"
        wait_ready_agent "$d/fo$run/agent.log" 0 20 ||
            { fail "sec=ha_failover run=$run" "the agent never became ready"; continue; }
        ha_served "$sock" "spiffe://$TD/ha/fo$run" 10 ||
            { fail "sec=ha_failover run=$run" "the first SVID was never served"; continue; }
        drawn=$(sed -n 's/.*CA server drawn server=\([^ ]*\).*/\1/p' "$d/fo$run/agent.log" | tail -1)
        if [ "$drawn" = "$addr_a" ]; then
            victim=a other=b
        else
            victim=b other=a
        fi
        osock=sock_$other
        local vpid=pid_$victim
        t0=$(date +%s%N)
        kill -9 "${!vpid}"
        "$CA_BIN" entry create --admin-socket "${!osock}" --spiffe-id "spiffe://$TD/ha/after$run" \
            --parent-id "$ag" --selector unix:uid:0 >/dev/null
        if ha_served "$sock" "spiffe://$TD/ha/after$run" 30; then
            ms=$((($(date +%s%N) - t0) / 1000000))
            echo "sec=ha_failover run=$run | failover ms=$ms" >>"$RES"
        else
            fail "sec=ha_failover run=$run" "no SVID served through the other server within 30 s"
        fi
        stop "$AGENT_PID"
        # the killed server back, on its own data dir (start_ca waits for
        # a ready line: keep the old log apart)
        mv "$d/$victim/ca.log" "$d/$victim/ca.log.$run"
        start_ca "ha_$victim" "$d/$victim" "" --datastore-file "$d/ds" --agent-rate 10000 \
            --agent-burst 10000
        printf -v "pid_$victim" '%s' "$CA_PID"
        printf -v "addr_$victim" '%s' "$CA_ADDR"
        printf -v "sock_$victim" '%s' "$CA_SOCK"
    done
    stop "$pid_a"
    stop "$pid_b"
    "${HA_PG_CTL[@]}" -m fast -w stop >/dev/null 2>&1 || true
}
