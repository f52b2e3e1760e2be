# Shared by the bench scripts (sourced): section headers and waiting for an idle machine.

section() { printf '\n==== %s (load %s) ====\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

# Waits until the 1-minute load average is below MAX_LOAD, at most MAX_WAIT seconds, so that
# the baselines and credits are measured in the same quiet conditions.
wait_for_idle() {
  section "wait for an idle machine (1-min load < $MAX_LOAD, at most ${MAX_WAIT}s)"
  local waited=0 load1
  while :; do
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load1" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then
      echo "load $load1 after ${waited}s: measuring"; break
    fi
    if [ "$waited" -ge "$MAX_WAIT" ]; then
      echo "load still $load1 after ${waited}s: measuring anyway (note it with the numbers)"; break
    fi
    sleep 15; waited=$((waited + 15))
  done
  uptime
}

# Builds the release binaries and starts the local PostgreSQL cluster if it is down.
build_and_start_postgres() {
  section "build"
  cargo build --release -p credits -p credits-bench
  section "PostgreSQL cluster"
  if ! pg_lsclusters -h | awk '$4 == "online" { found = 1 } END { exit !found }'; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  fi
  pg_lsclusters
}
