package objstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// badgerLogger adapts a *slog.Logger to badger.Logger. Badger's Info
// messages (table and file housekeeping) are logged at Debug level.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

func (l badgerLogger) Errorf(f string, a ...any)   { l.logf(slog.LevelError, f, a) }
func (l badgerLogger) Warningf(f string, a ...any) { l.logf(slog.LevelWarn, f, a) }
func (l badgerLogger) Infof(f string, a ...any)    { l.logf(slog.LevelDebug, f, a) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.logf(slog.LevelDebug-4, f, a) }
