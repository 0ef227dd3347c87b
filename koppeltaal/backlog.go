package koppeltaal

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/store"
)

// BacklogCollector exports what waits in every mailbox as koppelpoort_mailbox_waiting and
// koppelpoort_mailbox_oldest_waiting_seconds{domain,instance}, read from the store when scraped (at most
// every cacheFor, so several scrapers cost one query). Every instance has a series from the start, 0 when
// its mailbox is empty, so an alert on it works before the first message.
type BacklogCollector struct {
	st       *store.Store
	log      *slog.Logger
	cacheFor time.Duration
	now      func() time.Time

	waiting, oldest *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	cached []store.MailboxBacklog
}

// NewBacklogCollector returns the collector for st.
func NewBacklogCollector(st *store.Store, log *slog.Logger) *BacklogCollector {
	labels := []string{"domain", "instance"}
	return &BacklogCollector{st: st, log: log, cacheFor: 10 * time.Second, now: time.Now,
		waiting: prometheus.NewDesc("koppelpoort_mailbox_waiting", "Messages in status New in an application instance's mailbox.", labels, nil),
		oldest: prometheus.NewDesc("koppelpoort_mailbox_oldest_waiting_seconds",
			"Age of the oldest message waiting (status New) in an application instance's mailbox; 0 when none waits.", labels, nil)}
}

// Describe implements prometheus.Collector.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.waiting; ch <- c.oldest }

// Collect implements prometheus.Collector.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, b := range c.backlogs(now) {
		age := 0.0
		if b.Oldest > 0 {
			age = max(0, now.Sub(time.UnixMicro(b.Oldest)).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(b.Waiting), b.Domain, b.Instance)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, b.Domain, b.Instance)
	}
}

func (c *BacklogCollector) backlogs(now time.Time) []store.MailboxBacklog {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && now.Sub(c.at) < c.cacheFor {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var bs []store.MailboxBacklog
	err := c.st.View(ctx, func(tx *store.Tx) error {
		var err error
		bs, err = tx.MailboxBacklogs(ctx)
		return err
	})
	if err != nil {
		// A store that cannot be read is /readyz's to report; the scrape shows the last values.
		c.log.Warn("mailbox backlog not read", "error", err)
		return c.cached
	}
	c.cached, c.at = bs, now
	return bs
}
