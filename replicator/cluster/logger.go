package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger for serf and memberlist that forwards
// each line to log at the level its "[DEBUG]"/"[INFO]"/"[WARN]"/"[ERR]"
// prefix names, so their chatter follows the node's log level.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{log: l}, "", 0)
}

type levelWriter struct{ log *slog.Logger }

func (w *levelWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(bytes.TrimRight(p, "\n")))
	level := slog.LevelInfo
	for _, pl := range []struct {
		prefix string
		level  slog.Level
	}{{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if strings.HasPrefix(line, pl.prefix) {
			level, line = pl.level, strings.TrimSpace(strings.TrimPrefix(line, pl.prefix))
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
