package dnssvc

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// routeLogs sends CoreDNS's and Caddy's log lines, which go through the standard library's
// log package as "[LEVEL] plugin/name: message", into slog with a level and a component.
// The standard logger is process-wide; the daemon has one DNS service, and tests share a
// process, so the last service started wins, which is harmless.
func routeLogs(l *slog.Logger) {
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(&logWriter{l: l.With("component", "coredns")})
}

type logWriter struct{ l *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		level, msg := parseLogLine(string(line))
		w.l.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// parseLogLine splits "[ERROR] plugin/errors: 2 example.com. A: read udp ..." into a level
// and the rest.
func parseLogLine(s string) (slog.Level, string) {
	levels := []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARNING] ", slog.LevelWarn},
		{"[ERROR] ", slog.LevelError}, {"[FATAL] ", slog.LevelError}, {"[PANIC] ", slog.LevelError},
	}
	for _, l := range levels {
		if rest, ok := strings.CutPrefix(s, l.prefix); ok {
			return l.level, rest
		}
	}
	return slog.LevelInfo, s
}
