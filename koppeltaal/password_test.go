package koppeltaal

import (
	"sync"
	"testing"
)

func TestVerifyCacheConcurrent(t *testing.T) {
	h, err := HashPasswordCost("right", 4)
	if err != nil {
		t.Fatal(err)
	}
	c := newVerifyCache()
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"wrong", false}, {"right", true}, {"wrong", false}, {"right", true}} {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := c.check(h, tc.pw); got != tc.want {
					t.Errorf("check(%q) = %v", tc.pw, got)
				}
			}()
		}
		wg.Wait()
	}
	// A changed stored hash does not reuse the cached success.
	h2, _ := HashPasswordCost("other", 4)
	if c.check(h2, "right") {
		t.Fatal("cached success survived a password change")
	}
}

func TestCheckPasswordFormats(t *testing.T) {
	cases := []struct {
		hash, pw string
		want     bool
	}{
		{"$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$vU/PSfvQB/HGuQ+fKzV+Dg", "argon-pass", true},
		{"$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$vU/PSfvQB/HGuQ+fKzV+Dg", "nope", false},
		{"$argon2id$v=19$m=16,t=2,p=1$c2FsdHNhbHQ", "argon-pass", false},
		{"plain-text", "plain-text", false},
	}
	for _, c := range cases {
		if got := CheckPassword(c.hash, c.pw); got != c.want {
			t.Errorf("CheckPassword(%q, %q) = %v", c.hash, c.pw, got)
		}
	}
}
