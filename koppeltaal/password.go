package koppeltaal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// HashPassword hashes a plain-text password with bcrypt (default cost).
func HashPassword(plain string) (string, error) { return HashPasswordCost(plain, bcrypt.DefaultCost) }

// HashPasswordCost hashes with bcrypt at cost (0: default).
func HashPasswordCost(plain string, cost int) (string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(plain), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// IsSupportedHash reports whether h is a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash this server verifies.
func IsSupportedHash(h string) bool {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		_, err := bcrypt.Cost([]byte(h))
		return err == nil
	case strings.HasPrefix(h, "$argon2id$"):
		_, _, _, err := parseArgon2id(h)
		return err == nil
	}
	return false
}

// CheckPassword reports whether plain matches the bcrypt or argon2id hash.
func CheckPassword(hash, plain string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		p, salt, key, err := parseArgon2id(hash)
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(plain), salt, p.time, p.memory, p.threads, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(plain)) == nil
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// parseArgon2id reads the PHC string $argon2id$v=19$m=65536,t=3,p=4$<salt>$<key>.
func parseArgon2id(h string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id parameters %q: %w", parts[3], err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("argon2id salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return p, nil, nil, fmt.Errorf("argon2id key: %v", err)
	}
	return p, salt, key, nil
}

// verifyCache remembers successful password checks so that a client sending
// Basic auth on every call does not pay a bcrypt/argon2 verification each
// time. Entries are keyed by the stored hash and an HMAC of the presented
// password under a per-process random key, so no password is kept in memory
// and a changed password (new stored hash) invalidates the entry.
type verifyCache struct {
	key [32]byte
	mu  sync.Mutex
	ok  map[string]struct{}
	// inflight: one verification per key at a time; concurrent first requests
	// of one client wait for it instead of each paying a bcrypt check.
	inflight map[string]*sync.WaitGroup
}

func newVerifyCache() *verifyCache {
	c := &verifyCache{ok: map[string]struct{}{}, inflight: map[string]*sync.WaitGroup{}}
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *verifyCache) keyOf(hash, plain string) string {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(plain))
	return string(m.Sum(nil))
}

// known reports whether plain was verified against hash before (no check is run).
func (c *verifyCache) known(hash, plain string) bool {
	k := c.keyOf(hash, plain)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, hit := c.ok[k]
	return hit
}

func (c *verifyCache) check(hash, plain string) bool {
	k := c.keyOf(hash, plain)
	c.mu.Lock()
	if _, hit := c.ok[k]; hit {
		c.mu.Unlock()
		return true
	}
	if running, busy := c.inflight[k]; busy {
		// The same pair is being verified: wait for that check rather than run a second bcrypt. A miss
		// after it means the same password just failed verification.
		c.mu.Unlock()
		running.Wait()
		c.mu.Lock()
		defer c.mu.Unlock()
		_, hit := c.ok[k]
		return hit
	}
	wg := &sync.WaitGroup{}
	wg.Add(1)
	c.inflight[k] = wg
	c.mu.Unlock()
	good := CheckPassword(hash, plain)
	c.mu.Lock()
	if good {
		if len(c.ok) > 10000 { // bounded: drop everything rather than grow without limit
			c.ok = map[string]struct{}{}
		}
		c.ok[k] = struct{}{}
	}
	delete(c.inflight, k)
	c.mu.Unlock()
	wg.Done()
	return good
}
