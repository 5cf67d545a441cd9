#!/usr/bin/env bash
# bench/rollout.sh: what a new image costs the clients of a service behind
# dlb, deployed with `dlb rollout` and with plain `compose up -d`, on the
# same stack in one run: 3 replicas of the demo app, 8 keep-alive clients
# (bench/keepalive) through dlb; for each deploy the requests, the failed
# ones, the slowest, p99.9 and p50, and how long the deploy took.
#
#   bash bench/rollout.sh [ROUNDS]     (default 2; each round deploys once each way, the order alternating)
#
# Every deploy switches the service between two images of the demo app
# (tags of this run's own). dlb runs on the host on loopback ports; the load
# goes to 127.0.0.1 only and stops after each deploy (at most 3 minutes).
# Needs Docker, Compose (v2 or v1) and Go; removes all it made on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${1:-2}
ID="dlbroll$$"
WORK=$(mktemp -d)
DLBPID= LOADPID=
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
compose() { APP_IMAGE=$IMAGE "${COMPOSE[@]}" -p "$ID" -f "$WORK/compose.yaml" "$@"; }
cleanup() {
	[ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
	[ -n "$DLBPID" ] && kill "$DLBPID" 2>/dev/null || true
	IMAGE=none compose down -t 1 >/dev/null 2>&1 || true
	docker rmi "dlb-demo:$ID-a" "dlb-demo:$ID-b" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/bin"
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/dlb" ./cmd/dlb
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/demo" ./examples/demo
(cd bench && go build -o "$WORK/bin/keepalive" ./keepalive)
docker build -q -t "dlb-demo:$ID-a" -f examples/demo/Dockerfile "$WORK" >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log" >&2; exit 1; }
printf 'FROM dlb-demo:%s-a\nLABEL bench=b\n' "$ID" | docker build -q -t "dlb-demo:$ID-b" - >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log" >&2; exit 1; }
cat >"$WORK/compose.yaml" <<YAML
services:
  app:
    image: \${APP_IMAGE}
    labels:
      dlb.enable: "true"
    networks: [appnet]
networks:
  appnet: {}
YAML

IMAGE="dlb-demo:$ID-a"
compose up -d --no-build --scale app=3 >/dev/null 2>&1
"$WORK/bin/dlb" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --network appnet --project "$ID" --log-format json >"$WORK/dlb.log" 2>&1 &
DLBPID=$!
for _ in $(seq 100); do grep -q '"dlb starting"' "$WORK/dlb.log" && break; sleep 0.1; done
LISTEN=$(grep -m1 '"dlb starting"' "$WORK/dlb.log" | sed 's/.*"listen":"\([^"]*\)".*/\1/')
ADMIN=$(grep -m1 '"dlb starting"' "$WORK/dlb.log" | sed 's/.*"admin":"\([^"]*\)".*/\1/')

# ready3 waits (at most 60 s) until dlb has exactly 3 replicas, all ready.
ready3() {
	for _ in $(seq 300); do
		n=$("$WORK/bin/dlb" status --admin-url "http://$ADMIN" 2>/dev/null | awk 'NR>1 && $5=="ready"' | wc -l)
		t=$("$WORK/bin/dlb" status --admin-url "http://$ADMIN" 2>/dev/null | awk 'NR>1' | wc -l)
		[ "$n" = 3 ] && [ "$t" = 3 ] && return 0
		sleep 0.2
	done
	echo "dlb did not get 3 ready replicas in 60 s" >&2
	exit 1
}
ready3

deploy() { # deploy METHOD: switch the image, the way METHOD says
	if [ "$IMAGE" = "dlb-demo:$ID-a" ]; then IMAGE="dlb-demo:$ID-b"; else IMAGE="dlb-demo:$ID-a"; fi
	case $1 in
	rollout) APP_IMAGE=$IMAGE "$WORK/bin/dlb" rollout -p "$ID" -f "$WORK/compose.yaml" --admin-url "http://$ADMIN" app >"$WORK/deploy.log" 2>&1 ;;
	up) compose up -d --no-build --scale app=3 app >"$WORK/deploy.log" 2>&1 ;;
	esac
}

printf '%-8s %5s %9s %9s %7s %11s %9s %8s\n' method round deploy_s requests failed slowest_ms p999_ms p50_ms
for round in $(seq "$ROUNDS"); do
	order="rollout up"
	[ $((round % 2)) = 0 ] && order="up rollout"
	for method in $order; do
		"$WORK/bin/keepalive" -url "http://$LISTEN/" -c 8 -max-time 3m >"$WORK/load.out" &
		LOADPID=$!
		sleep 1
		start=$(date +%s.%N)
		deploy "$method" || { cat "$WORK/deploy.log" >&2; exit 1; }
		took=$(echo "$(date +%s.%N) - $start" | bc)
		sleep 1
		kill -INT "$LOADPID"
		wait "$LOADPID" || true
		LOADPID=
		eval "$(tr ' ' '\n' <"$WORK/load.out" | sed 's/^/r_/')"
		printf '%-8s %5s %9.1f %9s %7s %11s %9s %8s\n' "$method" "$round" "$took" "$r_requests" "$r_failed" "$r_slowest_ms" "$r_p999_ms" "$r_p50_ms"
		ready3
	done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); Compose: ${COMPOSE[*]} $("${COMPOSE[@]}" version --short 2>/dev/null || true)"
