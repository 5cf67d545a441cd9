// Package nettest holds what the tests of several packages share: a
// loopback address where nothing listens, a deadline poll, a slow-body
// client, a checkable generated body, and a buffer safe to write while a
// test reads it.
package nettest
