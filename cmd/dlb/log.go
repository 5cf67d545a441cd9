package main

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// newStdLogger sends the standard library's server errors (TLS handshakes,
// bad requests, panics in handlers) to zerolog at warn level.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(stdWriter{l}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.Warn().Str("component", "http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
