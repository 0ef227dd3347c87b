package store

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// Round trips to PostgreSQL are counted at the socket: one round trip is a
// turn from sending to receiving on a connection (however many statements
// the bytes sent carried). The count is what pipelining saves, so a change
// that adds one shows in a test (roundtrips_test.go) and on /metrics.

// RoundTrips returns the number of round trips to the database since Open
// (PostgreSQL; 0 on SQLite, which runs in process).
func (s *Store) RoundTrips() uint64 { return s.roundTrips.Load() }

// countingDial wraps dial so that every connection counts its round trips into n.
func countingDial(dial pgconn.DialFunc, n *atomic.Uint64) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: n}, nil
	}
}

type countingConn struct {
	net.Conn
	n       *atomic.Uint64
	written atomic.Bool // bytes were sent since the last read
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.written.Store(true)
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.written.Swap(false) {
		c.n.Add(1)
	}
	return c.Conn.Read(b)
}
