package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// PostLock says what LockForPost locks and reads for one POST /Mailbox.
type PostLock struct {
	DomainID, SenderID int64
	Identifier         string // MessageHeader.identifier
	// RequestHash, when not "", looks up the receipt of an identical earlier
	// POST of this sender and identifier (decision 18) under the locks.
	RequestHash string
	// Exclusive are the resources the message versions and its focal reference.
	Exclusive []string
	// Unchanged are resources the message may carry unchanged, URL → content
	// hash: on PostgreSQL locked shared when their current version has that
	// hash, exclusively otherwise. A URL also in Exclusive is locked exclusively.
	Unchanged map[string]string
	// Read are the resources whose current state is read under the locks.
	Read []string
}

// PostState is what LockForPost found under its locks.
type PostState struct {
	// LastVersion is the version the POST must issue above: the domain's last
	// version on SQLite, "" on PostgreSQL (the caller raises it to the current
	// version of every resource it read).
	LastVersion string
	// Receipt is the receipt of an identical earlier POST, when HasReceipt.
	Receipt    Receipt
	HasReceipt bool
	// Resources are the known ones among PostLock.Read, keyed by URL.
	Resources map[string]Resource
	// Shared are the Unchanged URLs that got a shared lock. The caller must
	// check that each is still unchanged in Resources (it may have changed
	// between the check and the lock) and otherwise start over without
	// Unchanged.
	Shared []string
}

// LockForPost takes the locks one POST /Mailbox needs before its retry lookup,
// version checks and writes, and reads what those need; the caller must call
// PostVersionIssued with the version it issues.
//
// SQLite: the domain's version lock, as before (there is one writer anyway, and
// the returned domain version is above every version issued in the domain).
//
// PostgreSQL: no domain-wide lock — posts in one domain would otherwise queue
// for each other's whole transaction and commit. Instead one transaction-scoped
// advisory lock per (domain, resource URL) — which also covers resources that
// have no row yet — and one per (sender, MessageHeader.identifier) for the retry
// dedupe (post_receipts). Keys are hashes, taken in sorted order without
// duplicates, so two posts never wait for each other in a cycle; a hash
// collision only serialises two unrelated posts. Resources a message carries
// unchanged — the practitioner and organization in every CarePlan message of an
// institution — get shared locks, so the many posts that carry them do not
// queue for each other, while a post that changes one (exclusive) still waits
// for them and they for it. The locks, the receipt and the resources are one
// round trip (with BEGIN): the shared-or-exclusive choice is made by the lock
// statement itself.
func (t *Tx) LockForPost(ctx context.Context, l PostLock) (PostState, error) {
	if t.pg == nil {
		return t.lockForPostSQLite(ctx, l)
	}
	type lock struct {
		key       int64
		url, hash string // maybe shared: when the resource's current hash is hash
	}
	locks := make([]lock, 0, len(l.Exclusive)+len(l.Unchanged)+1)
	locks = append(locks, lock{key: postLockKey("message", l.SenderID, l.Identifier)})
	for _, u := range l.Exclusive {
		locks = append(locks, lock{key: postLockKey("resource", l.DomainID, u)})
	}
	for u, h := range l.Unchanged {
		locks = append(locks, lock{key: postLockKey("resource", l.DomainID, u), url: u, hash: h})
	}
	// Sorted by key, exclusive first, then one lock per key: the exclusive one
	// where a URL is in both lists.
	slices.SortFunc(locks, func(a, b lock) int {
		if a.key != b.key {
			return cmp.Compare(a.key, b.key)
		}
		return cmp.Compare(a.url, b.url)
	})
	locks = slices.CompactFunc(locks, func(a, b lock) bool { return a.key == b.key })
	// The select list is evaluated left to right, so the locks are taken in the
	// (sorted) order written; a column is "s" where the lock is shared. Every
	// column has the same form (an exclusive lock passes no URL), so the
	// statement's text, and its prepared plan, depends on the number of locks only.
	// More than maxColumns locks (a message with thousands of resources) are
	// several statements, still in order, in the same round trip.
	var st PostState
	var stmts []pgStmt
	for lo := 0; lo < len(locks); lo += maxColumns {
		group := locks[lo:min(len(locks), lo+maxColumns)]
		var b strings.Builder
		args := []any{l.DomainID}
		b.WriteString("SELECT ")
		for i, lk := range group {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&b, `CASE WHEN EXISTS (SELECT 1 FROM resources WHERE domain_id = $1 AND url = $%d AND content_hash = $%d)
			THEN 's' || pg_advisory_xact_lock_shared($%d)::text ELSE pg_advisory_xact_lock($%d)::text END`, n+1, n+2, n+3, n+3)
			args = append(args, lk.url, lk.hash, lk.key)
		}
		stmts = append(stmts, pgStmt{sql: b.String(), args: args, scan: func(rows pgx.Rows) error {
			if !rows.Next() {
				return errors.New("no row")
			}
			vals, err := rows.Values()
			if err != nil {
				return err
			}
			for i, v := range vals {
				if v == "s" {
					st.Shared = append(st.Shared, group[i].url)
				}
			}
			return nil
		}})
	}
	if l.RequestHash != "" {
		stmts = append(stmts, pgStmt{sql: receiptSQLPG, args: []any{l.SenderID, l.Identifier, l.RequestHash},
			scan: func(rows pgx.Rows) error {
				var err error
				st.Receipt, st.HasReceipt, err = scanReceipt(rows, l.SenderID, l.Identifier, l.RequestHash)
				return err
			}})
	}
	if len(l.Read) > 0 {
		stmts = append(stmts, pgStmt{sql: resourcesSQLPG, args: []any{l.DomainID, l.Read}, scan: func(rows pgx.Rows) error {
			var rs []Resource
			if err := scanAll(rows, &rs); err != nil {
				return err
			}
			st.Resources = make(map[string]Resource, len(rs))
			for _, r := range rs {
				st.Resources[r.URL] = r
			}
			return nil
		}})
	}
	if err := t.pg.send(ctx, stmts...); err != nil {
		return st, fmt.Errorf("lock %d resources of message %s in domain %d: %w", len(locks)-1, l.Identifier, l.DomainID, err)
	}
	if st.Resources == nil {
		st.Resources = map[string]Resource{}
	}
	return st, nil
}

func (t *Tx) lockForPostSQLite(ctx context.Context, l PostLock) (PostState, error) {
	var st PostState
	var err error
	if st.LastVersion, err = t.LockDomainVersion(ctx, l.DomainID); err != nil {
		return st, err
	}
	if l.RequestHash != "" {
		if st.Receipt, st.HasReceipt, err = t.Receipt(ctx, l.SenderID, l.Identifier, l.RequestHash); err != nil {
			return st, err
		}
	}
	st.Resources, err = t.Resources(ctx, l.DomainID, l.Read)
	return st, err
}

// PostVersionIssued records v, the version a POST issued in domainID. On SQLite
// it is the domain's last version (SetDomainVersion, under the lock LockForPost
// took). On PostgreSQL it does nothing: writing domains.last_version would take
// the domain row lock until COMMIT, which is what LockForPost avoids there.
func (t *Tx) PostVersionIssued(ctx context.Context, domainID int64, v string) error {
	if t.pg == nil {
		return t.SetDomainVersion(ctx, domainID, v)
	}
	return nil
}

// postLockKey is the advisory-lock key of name within scope (a domain or an
// instance id): 64 bits of FNV-1a over a kind tag, the scope and the name.
// The migration lock (pgMigrationLock) shares the key space; a collision with
// it would only make one post wait for a migration.
func postLockKey(kind string, scope int64, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, scope, 10))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}
