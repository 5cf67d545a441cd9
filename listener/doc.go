// Package listener holds what dlb does with its client connections before
// a server reads a request from them: ConnLimit bounds how many are open at
// once across listeners (--max-conns), and Idle parks those idle between
// requests (--park-idle-after) in a Parking, which keeps them with no
// goroutine and no buffer until their next request; the proxy's fast data
// path parks its own connections in a Parking too. NewServer makes the
// http.Server of the proxy's listeners, with dlb's header and idle
// timeouts, and ShutdownAll stops several at once. It knows no HTTP
// routing and no proxy.
package listener
