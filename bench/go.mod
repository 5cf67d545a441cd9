// The benchmark's own helpers (the chart drawer). A module of its own so that
// dlb's go.mod does not carry golang.org/x/image, which only the bench needs.
module github.com/dlb-lb/dlb/bench

go 1.26.8

require golang.org/x/image v0.48.0
