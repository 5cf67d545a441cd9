// The I/O-model prototypes of issue #13: dlb's parser, router and header
// rewriting (proxy's dlbiomodel exports) behind four I/O models. A module of
// its own so that neither dlb's nor bench's go.mod carries nbio or gnet.
module github.com/dlb-lb/dlb/bench/iomodel

go 1.26.8

require (
	github.com/dlb-lb/dlb v0.0.0
	github.com/lesismal/nbio v1.6.8
	github.com/panjf2000/gnet/v2 v2.9.7
	golang.org/x/sys v0.48.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/panjf2000/ants/v2 v2.11.3 // indirect
	github.com/rs/zerolog v1.35.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/sync v0.11.0 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)

replace github.com/dlb-lb/dlb => ../..
