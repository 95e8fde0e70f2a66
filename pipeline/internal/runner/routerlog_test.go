package runner

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestRouterLoggerKeepsLevels(t *testing.T) {
	for _, c := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, []string{"info", "error"}},
		{slog.LevelDebug, []string{"debug", "info", "error"}},
		{watermill.LevelTrace, []string{"trace", "debug", "info", "error"}},
	} {
		var buf bytes.Buffer
		l := routerLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))).With(watermill.LogFields{"handler": "h"})
		l.Trace("trace", watermill.LogFields{"n": 1})
		l.Debug("debug", nil)
		l.Info("info", nil)
		l.Error("error", nil, nil)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if !strings.Contains(line, "handler=h") {
				t.Errorf("level %v: %q lost the With fields", c.level, line)
			}
			got = append(got, strings.TrimPrefix(strings.Fields(line[strings.Index(line, "msg="):])[0], "msg="))
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("level %v: logged %v, want %v", c.level, got, c.want)
		}
	}
}
