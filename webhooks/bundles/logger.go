package bundles

import (
	"fmt"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// opaLogger passes the log lines of OPA's REST client and downloaders to
// zap. OPA masks the Authorization header in what it logs, and
// Portcullis never puts credentials in a bundle URL (ParseSpec refuses
// them) or in the client configuration's logged fields.
type opaLogger struct {
	log   *zap.Logger
	level *atomic.Int32
}

var _ logging.Logger = opaLogger{}

func newOPALogger(log *zap.Logger) opaLogger {
	lvl := &atomic.Int32{}
	switch {
	case log.Core().Enabled(zapcore.DebugLevel):
		lvl.Store(int32(logging.Debug))
	case log.Core().Enabled(zapcore.InfoLevel):
		lvl.Store(int32(logging.Info))
	default:
		lvl.Store(int32(logging.Warn))
	}
	return opaLogger{log: log, level: lvl}
}

func (l opaLogger) Debug(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l opaLogger) Info(f string, a ...any)  { l.log.Info(fmt.Sprintf(f, a...)) }
func (l opaLogger) Warn(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l opaLogger) Error(f string, a ...any) { l.log.Error(fmt.Sprintf(f, a...)) }

func (l opaLogger) WithFields(fields map[string]any) logging.Logger {
	zf := make([]zap.Field, 0, len(fields))
	for k, v := range fields {
		zf = append(zf, zap.Any(k, v))
	}
	return opaLogger{log: l.log.With(zf...), level: l.level}
}

func (l opaLogger) GetLevel() logging.Level   { return logging.Level(l.level.Load()) }
func (l opaLogger) SetLevel(lv logging.Level) { l.level.Store(int32(lv)) }
