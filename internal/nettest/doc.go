// Package nettest holds what the tests of several packages share: a
// loopback address where nothing listens, and a deadline poll.
package nettest
