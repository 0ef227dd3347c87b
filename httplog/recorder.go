package httplog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/internal/batch"
	"github.com/koppelpoort/koppelpoort/store"
)

// Options configure New.
type Options struct {
	Store  *store.Store
	Config Config
	Logger *slog.Logger
	// Registerer receives koppelpoort_http_log_* metrics; nil: not registered.
	Registerer prometheus.Registerer
	// FlushInterval is how long a row waits to be written with the next ones. Default 200ms.
	FlushInterval time.Duration
	// Now is the clock of RemoveExpired (tests); default time.Now.
	Now func() time.Time
}

// maxPending bounds the rows waiting for the writer: beyond it (a database
// that cannot keep up or is down) rows are dropped and counted, never the
// request slowed down.
const maxPending = 50000

// Recorder logs requests (Middleware) and removes old rows (RemoveExpired).
type Recorder struct {
	st      *store.Store
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	rows    *batch.Batcher[store.HTTPLogRow]
	dropped prometheus.Counter
	removed prometheus.Counter
}

// New returns a Recorder and starts its writer; Close stops it after a last write.
func New(opts Options) (*Recorder, error) {
	if opts.Store == nil {
		return nil, errors.New("httplog: Options.Store is nil")
	}
	opts.Config.SetDefaults()
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{st: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppelpoort_http_log_dropped_total",
			Help: "HTTP request log rows dropped because the database did not keep up."}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppelpoort_http_log_removed_total",
			Help: "HTTP request log rows removed after their retention."})}
	if opts.Registerer != nil {
		_ = opts.Registerer.Register(r.dropped)
		_ = opts.Registerer.Register(r.removed)
	}
	log := opts.Logger
	var err error
	r.rows, err = batch.New(batch.Options[store.HTTPLogRow]{Write: opts.Store.InsertHTTPLog, Interval: opts.FlushInterval,
		MaxPending: maxPending, DropWhenFull: true, OnDrop: r.dropped.Inc,
		OnError: func(err error) { log.Error("httplog: write request log", "err", err) }})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// unlogged are the operational endpoints (probes and scrapes every few seconds).
func unlogged(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics"
}

// bodiesKept reports whether the bodies of a request to path may be kept: the
// FHIR API only (OAuth, the console and the Support API carry passwords and tokens).
func bodiesKept(path string) bool { return strings.HasPrefix(path, "/FHIR/") }

// Middleware logs every request that passes through it. Mount it inside the
// request-id middleware, so the row carries the id the client sees.
func (l *Recorder) Middleware(next http.Handler) http.Handler {
	if l == nil || l.cfg.Disabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unlogged(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		slot := &callerSlot{}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		var reqBody, respBody *capped
		if l.cfg.Bodies && bodiesKept(r.URL.Path) {
			reqBody, respBody = &capped{max: l.cfg.MaxBodyBytes}, &capped{max: l.cfg.MaxBodyBytes}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = readCloser{io.TeeReader(r.Body, reqBody), r.Body}
			}
			ww.Tee(respBody)
		}
		path, query := r.URL.Path, r.URL.RawQuery // before handlers (StripSlashes) rewrite them
		defer func() {
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			slot.mu.Lock()
			c := slot.c
			slot.mu.Unlock()
			req := audit.RequestFromHTTP(r)
			row := store.HTTPLogRow{At: start.UnixMicro(), Method: r.Method, Path: path, Query: redactQuery(query),
				CallerKind: c.Kind, Caller: c.Name, Domain: c.Domain, Status: status,
				DurationUS: time.Since(start).Microseconds(), RequestID: req.RequestID, SourceIP: req.SourceIP}
			if reqBody != nil {
				row.RequestBody, row.ResponseBody = reqBody.bytes(), respBody.bytes()
			}
			l.rows.Add(r.Context(), row)
		}()
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), slotKey{}, slot)))
	})
}

// capped keeps the first max bytes written to it.
type capped struct {
	max int
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) bytes() []byte {
	if c.buf.Len() == 0 {
		return nil
	}
	return bytes.Clone(c.buf.Bytes())
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Flush writes the rows waiting (tests, shutdown).
func (l *Recorder) Flush(ctx context.Context) error { return l.rows.Flush(ctx) }

// Close writes what is waiting and stops the writer. Safe to call twice.
func (l *Recorder) Close() error { return l.rows.Close() }

// RemoveExpired removes rows past their retention (successful calls after
// SuccessDays, failed ones after FailureDays), batch rows per transaction so
// that the writer is never held long, and returns how many it removed. The
// Koppeltaal removal job calls it (koppeltaal.Service.AddRemover).
func (l *Recorder) RemoveExpired(ctx context.Context, batch int) (int64, error) {
	now := l.now()
	ok := now.Add(-time.Duration(l.cfg.SuccessDays) * 24 * time.Hour).UnixMicro()
	failed := now.Add(-time.Duration(l.cfg.FailureDays) * 24 * time.Hour).UnixMicro()
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := l.st.Update(ctx, func(tx *store.Tx) error {
			var err error
			n, err = tx.DeleteHTTPLog(ctx, ok, failed, batch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("httplog: remove expired rows: %w", err)
		}
		total += n
		l.removed.Add(float64(n))
		if n < int64(batch) {
			return total, nil
		}
	}
}

// RetentionJob names the lease of RunRetention (store.RunExclusive).
const RetentionJob = "http-log-retention"

// RunRetention removes expired rows at start and hourly until ctx ends, in
// one process at a time — for a server without the Koppeltaal removal job,
// which otherwise does it (koppeltaal.Service.AddRemover).
func (l *Recorder) RunRetention(ctx context.Context) error {
	return l.st.RunExclusive(ctx, RetentionJob, store.ExclusiveOptions{}, func(ctx context.Context) error {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if _, err := l.RemoveExpired(ctx, 500); err != nil && ctx.Err() == nil {
				l.log.Error("httplog: removal run failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}
