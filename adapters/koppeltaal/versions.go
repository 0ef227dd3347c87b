package koppeltaal

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// versionStore is the resource-version bookkeeping in the gateway table kp_gateway_resource_versions:
// per server+domain (scope) and resource URL, the version the server issued last.
type versionStore struct {
	db      *sql.DB
	dialect string
	scope   string
}

func (s *versionStore) q(query string) string {
	if s.dialect != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *versionStore) get(ctx context.Context, urls []string) (map[string]string, error) {
	out := map[string]string{}
	for _, u := range urls {
		var v string
		err := s.db.QueryRowContext(ctx, s.q(`SELECT version FROM kp_gateway_resource_versions WHERE scope = ? AND url = ?`), s.scope, u).Scan(&v)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read resource version of %s: %w", u, err)
		}
		out[u] = v
	}
	return out, nil
}

func (s *versionStore) put(ctx context.Context, versions map[string]string) error {
	for u, v := range versions {
		_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO kp_gateway_resource_versions (scope, url, version, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, url) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`), s.scope, u, v, time.Now().UnixMicro())
		if err != nil {
			return fmt.Errorf("record resource version of %s: %w", u, err)
		}
	}
	return nil
}
