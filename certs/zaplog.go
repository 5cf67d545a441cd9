package certs

import (
	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToZerolog makes a zap logger (what CertMagic logs with) that writes
// into dlb's zerolog logger. CertMagic's info lines are chatty (every ACME
// step), so they become debug; its warnings and errors stay what they are.
func zapToZerolog(log zerolog.Logger) *zap.Logger {
	return zap.New(&zerologCore{log: log})
}

// zerologCore is a zapcore.Core over a zerolog.Logger.
type zerologCore struct {
	log    zerolog.Logger
	fields []zapcore.Field
}

var _ zapcore.Core = (*zerologCore)(nil)

func levelOf(l zapcore.Level) zerolog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return zerolog.ErrorLevel
	case l == zapcore.WarnLevel:
		return zerolog.WarnLevel
	}
	return zerolog.DebugLevel
}

// Enabled says whether zerolog would write a line at this level.
func (c *zerologCore) Enabled(l zapcore.Level) bool {
	return levelOf(l) >= c.log.GetLevel()
}

// With adds fields to every line.
func (c *zerologCore) With(fs []zapcore.Field) zapcore.Core {
	return &zerologCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

// Check adds this core when the level is enabled.
func (c *zerologCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write writes one line, its fields as zerolog fields.
func (c *zerologCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	ev := c.log.WithLevel(levelOf(e.Level))
	if e.LoggerName != "" {
		ev = ev.Str("certmagic", e.LoggerName)
	}
	ev.Fields(enc.Fields).Msg(e.Message)
	return nil
}

// Sync has nothing to flush: zerolog writes at once.
func (c *zerologCore) Sync() error { return nil }
