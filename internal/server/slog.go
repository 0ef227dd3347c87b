package server

import (
	"log/slog"
	"net/http"
	"time"
)

func slogStr(k, v string) slog.Attr     { return slog.String(k, v) }
func slogInt(k string, v int) slog.Attr { return slog.Int(k, v) }
func slogDur(k string, v time.Duration) slog.Attr {
	return slog.Float64(k+"_ms", float64(v.Microseconds())/1000)
}

func levelFor(code int) slog.Level {
	switch {
	case code >= http.StatusInternalServerError:
		return slog.LevelError
	case code >= http.StatusBadRequest:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}
