#!/usr/bin/env bash
# bench/swarm-drain.sh: how fast dlb drains Docker Swarm tasks on a
# scale-down, under load: the time from a task's DesiredState leaving
# running (its UpdatedAt) to dlb draining it, and from the service's event,
# read from dlb's log ("swarm task draining": since_change_ms,
# since_service_event_ms), median and max over every task removed.
#
#   bash bench/swarm-drain.sh [ROUNDS]     (default 3; each round scales 6 -> 5 -> 4 -> 3 -> 2 -> 6)
#
# It initialises a one-node swarm when the engine is in none (and leaves it,
# and removes docker_gwbridge if it brought it, on exit); it never leaves a
# swarm it did not create. dlb runs as a container on an attachable overlay
# network, its port published on 127.0.0.1; a curl loop (at most 2 minutes,
# 30000 requests) sends requests through it, and the failed ones are counted.
# Needs Docker and Go; builds its own image tags, removes all it made.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${1:-3}
ID="dlbdrain$$"
WORK=$(mktemp -d)
CREATED=0 HADGW=1 LOADPID=
cleanup() {
	[ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
	docker rm -f "${ID}_dlb" >/dev/null 2>&1 || true
	docker service rm "${ID}_web" >/dev/null 2>&1 || true
	for _ in $(seq 1 60); do docker network rm "${ID}_net" >/dev/null 2>&1 && break; sleep 0.5; done
	if [ "$CREATED" = 1 ]; then
		docker swarm leave --force >/dev/null || true
		if [ "$HADGW" = 0 ]; then
			for _ in $(seq 1 40); do docker network rm docker_gwbridge >/dev/null 2>&1 && break; sleep 0.5; done
		fi
	fi
	docker rmi "dlb:$ID" "dlb-demo:$ID" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bin"
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/dlb" ./cmd/dlb
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/demo" ./examples/demo
docker build -q -t "dlb:$ID" -f Dockerfile "$WORK" >/dev/null
docker build -q -t "dlb-demo:$ID" -f examples/demo/Dockerfile "$WORK" >/dev/null

# The swarm tests of cmd/dlb take the same lock: neither leaves a swarm the
# other is using.
exec 9>"${TMPDIR:-/tmp}/dlb-swarm-test.lock"
flock 9
case $(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}') in
"active true") ;;
inactive*)
	docker network inspect docker_gwbridge >/dev/null 2>&1 || HADGW=0
	docker swarm init --advertise-addr 127.0.0.1 >/dev/null
	CREATED=1
	;;
*) echo "the engine is a swarm worker or in an odd swarm state: run this on a manager, or outside any swarm" >&2; exit 1 ;;
esac

docker network create -d overlay --attachable "${ID}_net" >/dev/null
docker service create -d -q --name "${ID}_web" --no-resolve-image --endpoint-mode dnsrr --network "${ID}_net" \
	--replicas 6 --label dlb.enable=true "dlb-demo:$ID" >/dev/null 2>&1
docker run -d --name "${ID}_dlb" --network "${ID}_net" -v /var/run/docker.sock:/var/run/docker.sock:ro \
	-p 127.0.0.1::80 "dlb:$ID" --provider swarm --log-format json --queue-timeout 20s >/dev/null
ADDR=$(docker port "${ID}_dlb" 80/tcp)

running() { docker service ps -q --filter desired-state=running "${ID}_web" | xargs -r docker inspect --format '{{.Status.State}}' | grep -c '^running$' || true; }
waitrunning() { for _ in $(seq 1 120); do [ "$(running)" = "$1" ] && return; sleep 0.25; done; echo "timed out waiting for $1 tasks" >&2; exit 1; }
waitrunning 6

( end=$((SECONDS + 120)) n=0
	while [ $SECONDS -lt $end ] && [ $n -lt 30000 ]; do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 15 "http://$ADDR/" || true
		n=$((n + 1))
	done >"$WORK/codes" ) &
LOADPID=$!

for r in $(seq 1 "$ROUNDS"); do
	for n in 5 4 3 2; do
		docker service scale -d "${ID}_web=$n" >/dev/null 2>&1
		sleep 3 # the removed task's SIGTERM comes ~3 s after its DesiredState changed
	done
	docker service scale -d "${ID}_web=6" >/dev/null 2>&1
	waitrunning 6
	echo "round $r of $ROUNDS done" >&2
done
kill "$LOADPID" 2>/dev/null || true
wait "$LOADPID" 2>/dev/null || true
LOADPID=

docker logs "${ID}_dlb" 2>&1 | grep '"swarm task draining"' | grep '"desired_state":"remove"' >"$WORK/drains" || true
stats() { # field: median and max in ms
	grep -o "\"$1\":[0-9.]*" "$WORK/drains" | cut -d: -f2 | sort -n |
		awk '{a[NR]=$1} END {if (NR == 0) {print "none"; exit}; printf "%d tasks, median %.1f ms, max %.1f ms\n", NR, a[int((NR+1)/2)], a[NR]}'
}
echo "scale-down, task UpdatedAt (DesiredState remove) -> drained in dlb: $(stats since_change_ms)"
echo "scale-down, service event -> drained in dlb:                       $(stats since_service_event_ms)"
echo "every task, UpdatedAt -> drained (ms): $(grep -o '"since_change_ms":[0-9.]*' "$WORK/drains" | cut -d: -f2 | sort -n | awk '{printf "%.0f ", $1}')"
echo "requests: $(wc -l <"$WORK/codes"), not 200: $(grep -vc '^200$' "$WORK/codes" || true)"
