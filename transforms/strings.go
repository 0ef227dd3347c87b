package transforms

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// regexCache keeps compiled patterns: route expressions use a handful of literal patterns, millions of times.
var regexCache sync.Map // pattern → *regexp.Regexp

func compileRegex(pattern string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regular expression %q: %w", pattern, err)
	}
	regexCache.Store(pattern, re)
	return re, nil
}

func pad(s string, width int, fill string, left bool) (string, error) {
	if utf8.RuneCountInString(fill) != 1 {
		return "", fmt.Errorf("pad: fill must be one character, got %q", fill)
	}
	n := width - utf8.RuneCountInString(s)
	if n <= 0 {
		return s, nil
	}
	if left {
		return strings.Repeat(fill, n) + s, nil
	}
	return s + strings.Repeat(fill, n), nil
}

func onlyDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isBlank reports nil, empty and whitespace-only strings.
func isBlank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	}
	return false
}
