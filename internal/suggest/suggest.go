// Package suggest finds the known name a misspelt one was probably meant to
// be, for "did you mean" hints in configuration and route errors.
package suggest

import "strings"

// Closest returns the entry of known nearest to got (case-insensitive edit
// distance at most 2, or 3 for names of six letters or more), or "" when none
// is that close. Ties go to the earlier entry, so pass a sorted list.
func Closest(got string, known []string) string {
	limit := 2
	if len(got) >= 6 {
		limit = 3
	}
	best, bestD := "", limit+1
	g := strings.ToLower(got)
	for _, k := range known {
		if d := distance(g, strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance of a and b in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
