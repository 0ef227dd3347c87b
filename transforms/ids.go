package transforms

import (
	"fmt"
	"strings"
)

// Identifier systems used in Dutch care (Nictiz NamingSystems, as in the Koppeltaal examples).
var identifierSystems = map[string]string{
	"bsn":          "http://fhir.nl/fhir/NamingSystem/bsn",
	"agb":          "http://fhir.nl/fhir/NamingSystem/agb-z",
	"agb-z":        "http://fhir.nl/fhir/NamingSystem/agb-z",
	"uzi":          "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers",
	"uzi-nr-pers":  "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers",
	"uzi-nr-sys":   "http://fhir.nl/fhir/NamingSystem/uzi-nr-sys",
	"big":          "http://fhir.nl/fhir/NamingSystem/big",
	"ura":          "http://fhir.nl/fhir/NamingSystem/ura",
	"kvk":          "http://fhir.nl/fhir/NamingSystem/kvk",
	"koppeltaal":   "http://ggz.koppeltaal.nl/fhir/Koppeltaal",
	"pseudo-bsn":   "http://fhir.nl/fhir/NamingSystem/pseudo-bsn",
	"uzi-nr-organ": "http://fhir.nl/fhir/NamingSystem/uzi-nr-organ",
}

// SystemURI returns the naming-system URI for a short name such as "bsn" or "agb".
func SystemURI(name string) (string, error) {
	uri, ok := identifierSystems[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return "", fmt.Errorf("system: unknown identifier system %q (known: %s)", name, strings.Join(sortedKeys(identifierSystems), ", "))
	}
	return uri, nil
}

// NormalizeBSN strips spaces, dots and dashes and restores leading zeros lost by spreadsheets
// (an 8-digit BSN is a 9-digit one whose leading 0 was eaten).
func NormalizeBSN(s string) string {
	d := onlyDigits(s)
	if d == "" || len(d) >= 9 {
		return d
	}
	return strings.Repeat("0", 9-len(d)) + d
}

// BSNValid reports whether s is a citizen service number that passes the eleven-proof
// (9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 mod 11). Leading zeros lost in an export are tolerated.
func BSNValid(s string) bool {
	trimmed := strings.TrimSpace(s)
	for _, r := range trimmed {
		if !(r >= '0' && r <= '9') && r != ' ' && r != '.' && r != '-' {
			return false
		}
	}
	d := NormalizeBSN(trimmed)
	if len(d) != 9 || d == "000000000" || len(onlyDigits(trimmed)) < 8 {
		return false
	}
	sum := 0
	for i := 0; i < 8; i++ {
		sum += int(d[i]-'0') * (9 - i)
	}
	sum -= int(d[8] - '0')
	return sum%11 == 0
}

// AGBValid reports whether s is an 8-digit AGB code (the register has no check digit).
func AGBValid(s string) bool {
	d := strings.TrimSpace(s)
	return len(d) == 8 && onlyDigits(d) == d
}
