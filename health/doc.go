// Package health decides whether a replica can take requests, apart from
// how requests reach it: the readiness Gate holds a started replica back
// until it accepts TCP connections, the Checker runs its active HTTP check
// (dlb.health.path), and the Ejector takes a replica that refuses or resets
// connections out of its pool for a while (passive checks; resets take at
// most half of a pool's serving replicas out). Each keeps its
// background work per replica ID, so that starting one for a replica
// replaces the one running for it. It knows pools and upstreams
// (package balancer), not Docker nor the proxy, so that a TCP proxy can use
// it too.
package health
