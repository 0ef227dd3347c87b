package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// LockForPost takes the locks one POST /Mailbox needs before its retry lookup,
// version checks and writes, and returns the last version it must issue above.
// urls are the resources the message versions (and its focal reference); the
// caller must still raise the returned version to the current version of every
// resource it reads, and call PostVersionIssued with the version it issued.
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
// collision only serialises two unrelated posts. The returned version is "":
// versions only have to increase per resource, and every resource the message
// versions is locked and read by the caller.
//
// readOnly names resources the message carries but leaves as they are (same
// content as the current version): on PostgreSQL they get shared locks, so the
// many posts that carry the same unchanged resource — the practitioner and
// organization in every CarePlan message of an institution — do not queue for
// each other, while a post that changes it (exclusive) still waits for them and
// they for it. A URL in both lists is locked exclusively. The caller must check,
// after reading the resources under these locks, that each read-only one is
// indeed unchanged (it may have changed before the lock was taken) and
// otherwise start over with it in urls. SQLite ignores readOnly.
func (t *Tx) LockForPost(ctx context.Context, domainID, senderID int64, identifier string, urls, readOnly []string) (string, error) {
	if t.dialect != Postgres {
		return t.LockDomainVersion(ctx, domainID)
	}
	type lock struct {
		key    int64
		shared bool
	}
	locks := make([]lock, 0, len(urls)+len(readOnly)+1)
	locks = append(locks, lock{key: postLockKey("message", senderID, identifier)})
	for _, u := range urls {
		locks = append(locks, lock{key: postLockKey("resource", domainID, u)})
	}
	for _, u := range readOnly {
		locks = append(locks, lock{key: postLockKey("resource", domainID, u), shared: true})
	}
	// Sorted by key, exclusive before shared, then one lock per key: the
	// exclusive one where a key is in both lists.
	slices.SortFunc(locks, func(a, b lock) int {
		if a.key != b.key {
			return cmp.Compare(a.key, b.key)
		}
		if a.shared == b.shared {
			return 0
		}
		if !a.shared {
			return -1
		}
		return 1
	})
	locks = slices.CompactFunc(locks, func(a, b lock) bool { return a.key == b.key })
	// One round trip: the select list is evaluated left to right, so the locks
	// are taken in the (sorted) order written.
	var b strings.Builder
	args := make([]any, len(locks))
	b.WriteString("SELECT ")
	for i, l := range locks {
		if i > 0 {
			b.WriteString(", ")
		}
		if l.shared {
			b.WriteString("pg_advisory_xact_lock_shared(?)")
		} else {
			b.WriteString("pg_advisory_xact_lock(?)")
		}
		args[i] = l.key
	}
	if _, err := t.exec(ctx, b.String(), args...); err != nil {
		return "", fmt.Errorf("lock %d resources of message %s in domain %d: %w", len(urls)+len(readOnly), identifier, domainID, err)
	}
	return "", nil
}

// PostVersionIssued records v, the version a POST issued in domainID. On SQLite
// it is the domain's last version (SetDomainVersion, under the lock LockForPost
// took). On PostgreSQL it does nothing: writing domains.last_version would take
// the domain row lock until COMMIT, which is what LockForPost avoids there.
func (t *Tx) PostVersionIssued(ctx context.Context, domainID int64, v string) error {
	if t.dialect != Postgres {
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
